// Writes the documentation that is generated from the code: docs/configuration.md from the
// settings table. tests/unit/config-docs.test.ts fails when the file and the table disagree.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { configurationDoc } from '../server/config/document.js';

const target = path.resolve(import.meta.dirname, '../docs/configuration.md');
writeFileSync(target, configurationDoc());
process.stdout.write(`wrote ${path.relative(process.cwd(), target)}\n`);
