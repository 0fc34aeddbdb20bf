import cliProgress from 'cli-progress';

export interface Progress {
  /** Advances by `count` and updates the extra fields shown after the bar (loss, samples/s, ...). */
  tick(count?: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

const silent: Progress = { tick: () => undefined, stop: () => undefined };

/**
 * A progress bar on stderr for long work; silent when stderr is not a terminal, so logs,
 * CI output and piped JSON stay clean.
 */
export function startProgress(label: string, total: number, fieldNames: string[] = []): Progress {
  if (!process.stderr.isTTY || process.env.CI) return silent;
  const extra = fieldNames.map((name) => `${name} {${name}}`).join(' | ');
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {value}/{total} {percentage}% | eta {eta_formatted}${extra ? ` | ${extra}` : ''}`,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, Object.fromEntries(fieldNames.map((name) => [name, '-'])));
  return {
    tick(count = 1, fields) {
      bar.increment(count, fields);
    },
    stop() {
      bar.stop();
    },
  };
}
