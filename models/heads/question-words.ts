/**
 * The words a relational fusion trains an embedding for (RelationalFusionConfig.words): every
 * token id the training texts use, in order of first use, after index 0, which stands for any
 * other id. Built from the training texts alone, so a resumed run or a prediction pass rebuilds
 * the same table; a real CLIP's 49k-token vocabulary shrinks to the few thousand a dataset asks.
 */
export class QuestionWordTable {
  private readonly indexOf = new Map<number, number>();

  constructor(trainingTexts: Iterable<string>, private readonly tokenIdsOf: (text: string) => number[]) {
    for (const text of trainingTexts) for (const id of tokenIdsOf(text)) if (!this.indexOf.has(id)) this.indexOf.set(id, this.indexOf.size + 1);
  }

  /** Table rows, "other" included. */
  get size(): number {
    return this.indexOf.size + 1;
  }

  /** [texts × length] row indices of each text's tokens, cut or padded (with 0) to `length`, aligned with the encoder's token rows. */
  indices(texts: readonly string[], length: number): Int32Array {
    const out = new Int32Array(texts.length * length);
    texts.forEach((text, row) => {
      const ids = this.tokenIdsOf(text);
      for (let t = 0; t < Math.min(length, ids.length); t++) out[row * length + t] = this.indexOf.get(ids[t]) ?? 0;
    });
    return out;
  }
}
