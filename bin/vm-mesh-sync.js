#!/usr/bin/env node
// Entry point: Node 24 runs the TypeScript sources directly (type stripping).
import { main } from '../services/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
