// Entry point of the `vlbench` command: bin/vlbench.js runs its compiled form (dist/cli/main.js),
// `npm run vlbench` and the tests run it from the sources through tsx.
import { main } from './program.ts';

process.exitCode = await main(process.argv.slice(2));
