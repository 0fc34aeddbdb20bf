/**
 * Loading lmms-lab/VQAv2's parquet at full size: the time and the peak memory of loading a
 * validation-sized split (214,354 questions) from a Hugging Face cache folder, beside the
 * official JSON loader on the same questions, each in a fresh process so that one's memory is
 * not the other's.
 *
 *   npx tsx bench/hub-parquet.ts [--questions N] [--shards N] [--rows-per-group N] [--keep DIR]
 *
 * The files are written here (seeded, by parquet-wasm as in the tests), with the dataset card's
 * columns; the embedded images are small PNGs, since loading never reads the image column
 * (images are decoded from the files only when a run needs their pixels), so peak memory does
 * not depend on how large the real JPEGs are. The parquet loader reads one row group at a time;
 * the numbers say what the examples themselves cost against what reading costs.
 *
 * Where it stood (issue 31), on the 2-core machine this was built on while another job kept it
 * busy (wall times there move by 2x from run to run): 214,354 questions in 8 shards (4.3 MiB,
 * 1,000 rows per row group): parquet load 22.5-33.2 s, peak RSS 480 MiB; the official JSON of the
 * same questions 4.0-6.6 s, peak RSS 413 MiB. Memory is mostly the examples', which both layouts
 * hold; reading a row group at a time adds 67 MiB. The parquet time is hyparquet assembling rows,
 * the nested `answers` list of structs above all (its struct inversion and the garbage it leaves
 * are ~2/3 of a profile at 20k questions; `question_id` alone reads in ~2% of the time).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { SeededRandom } from '../core/random.ts';
import { hubVqaParquet, writeHubCache, type HubVqaRow } from '../test/support/hub-parquet-writer.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const index = args.indexOf(name);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};

/**
 * This process's peak resident set. Linux keeps getrusage's maxrss across exec, so a child
 * started by a parent that had grown large would report the parent's peak; VmHWM belongs to the
 * process's own memory map and starts afresh at exec.
 */
function peakResidentMiB(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) / 1024;
  } catch {
    // not Linux: getrusage's figure
  }
  return process.resourceUsage().maxRSS / 1024;
}

if (args[0] === '--child') {
  // One load, in its own process: print its wall time and the process's peak resident set.
  const [, layout, data] = args;
  const { loadVqaSplit } = await import('../tasks/vqa/index.ts');
  const started = performance.now();
  const split = layout === 'parquet' ? await loadVqaSplit({ dataDir: data, split: 'validation' }) : await loadVqaSplit({ split: '', files: { questions: join(data, 'v2_OpenEnded_mscoco_val2014_questions.json'), annotations: join(data, 'v2_mscoco_val2014_annotations.json') } });
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ examples: split.examples.length, seconds, peakRssMiB: peakResidentMiB() })}\n`);
  process.exit(0);
}

const questions = flag('--questions', 214_354);
const shards = flag('--shards', 8);
const rowsPerGroup = flag('--rows-per-group', 1000);
const keepIndex = args.indexOf('--keep');
const root = keepIndex >= 0 ? args[keepIndex + 1] : mkdtempSync(join(tmpdir(), 'vlbench-bench-hub-'));

const random = new SeededRandom(1);
const words = ['yes', 'no', '2', 'red', 'blue', 'dog', 'cat', 'table', 'tennis', 'street', 'one', 'white'];
const pngs = await Promise.all(Array.from({ length: 16 }, (_, index) => sharp(Buffer.alloc(8 * 8 * 3, index * 13), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer()));
const rows: HubVqaRow[] = Array.from({ length: questions }, (_, index) => {
  const imageId = Math.floor(index / 5) * 7 + 1;
  return {
    question_id: imageId * 1000 + (index % 5),
    image_id: imageId,
    question: `What is the ${words[index % words.length]} thing number ${index}?`,
    question_type: 'what is the',
    answer_type: ['yes/no', 'number', 'other'][index % 3],
    multiple_choice_answer: words[index % words.length],
    answers: Array.from({ length: 10 }, () => words[Math.floor(random.next() * words.length)]),
    image: new Uint8Array(pngs[imageId % pngs.length]),
  };
});

let started = performance.now();
const files: Record<string, Uint8Array> = {};
const perShard = Math.ceil(questions / shards);
for (let shard = 0; shard < shards; shard++) {
  const name = `data/validation-${String(shard).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.parquet`;
  files[name] = hubVqaParquet(rows.slice(shard * perShard, (shard + 1) * perShard), { codec: shard % 2 === 0 ? 'snappy' : 'zstd', rowsPerGroup });
}
const commit = '0'.repeat(40);
const cache = await writeHubCache(join(root, 'hub'), 'lmms-lab/VQAv2', { [commit]: files }, commit);
const parquetBytes = Object.values(files).reduce((sum, bytes) => sum + bytes.length, 0);
const header = { info: {}, task_type: 'Open-Ended', data_type: 'mscoco', license: {}, data_subtype: 'val2014' };
const official = join(root, 'official');
execFileSync('mkdir', ['-p', official]);
writeFileSync(join(official, 'v2_OpenEnded_mscoco_val2014_questions.json'), JSON.stringify({ ...header, questions: rows.map((row) => ({ image_id: row.image_id, question: row.question, question_id: row.question_id })) }));
writeFileSync(join(official, 'v2_mscoco_val2014_annotations.json'), JSON.stringify({
  ...header,
  annotations: rows.map((row) => ({ question_id: row.question_id, image_id: row.image_id, question_type: row.question_type, answer_type: row.answer_type, multiple_choice_answer: row.multiple_choice_answer, answers: row.answers!.map((answer, index) => ({ answer, answer_confidence: 'yes', answer_id: index + 1 })) })),
}));
process.stdout.write(`wrote ${questions} questions: ${shards} parquet shards (${(parquetBytes / 2 ** 20).toFixed(1)} MiB, ${rowsPerGroup} rows per row group) and the official JSON, in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);

for (const [layout, data] of [['parquet', cache], ['json', official]] as const) {
  started = performance.now();
  const output = execFileSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', layout, data], { encoding: 'utf8' });
  const result = JSON.parse(output.trim().split('\n').pop()!) as { examples: number; seconds: number; peakRssMiB: number };
  process.stdout.write(`${layout.padEnd(8)} ${result.examples} examples: load ${result.seconds.toFixed(2)} s, process ${((performance.now() - started) / 1000).toFixed(2)} s, peak RSS ${result.peakRssMiB.toFixed(0)} MiB\n`);
}
if (keepIndex < 0) rmSync(root, { recursive: true, force: true });
