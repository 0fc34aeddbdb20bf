// Entry point of the `vlbench` command (bin/vlbench.js and `npm run vlbench` start here).
import { main } from './program.ts';

process.exitCode = await main(process.argv.slice(2));
