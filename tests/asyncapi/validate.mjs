// Validates an AsyncAPI document with the AsyncAPI parser: errors fail, warnings are shown.
// Usage: node validate.mjs docs/asyncapi.yaml (with @asyncapi/parser installed beside it).
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], 'utf8'));
const errors = diagnostics.filter(d => d.severity === 0);
for (const d of diagnostics) console.log(`${['error','warning','info','hint'][d.severity]} ${d.code} ${d.path.join('.')}: ${d.message}`);
if (!document || errors.length) process.exit(1);
console.log('valid');
