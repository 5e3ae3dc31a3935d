#!/usr/bin/env node
// Rebuilds canisters/wasm/motoko/<name>.wasm from canisters/motoko/<name>.mo
// with the Motoko compiler of the npm package `motoko` (pinned in
// package.json; install it with `npm ci --prefix canisters/motoko`).
//
//   node canisters/motoko/build.js            write to canisters/wasm/motoko/
//   node canisters/motoko/build.js <outdir>   write to <outdir> instead
//
// The compiler runs offline and its output is deterministic, so the
// committed modules can be checked against their sources.
'use strict';
const fs = require('fs');
const path = require('path');
const mo = require('motoko');

const here = __dirname;
const out = path.resolve(process.argv[2] || path.join(here, '..', 'wasm', 'motoko'));
fs.mkdirSync(out, { recursive: true });

const sources = fs.readdirSync(here).filter((f) => f.endsWith('.mo')).sort();
for (const source of sources) {
  mo.write(source, fs.readFileSync(path.join(here, source), 'utf8'));
}
for (const source of sources) {
  const name = source.slice(0, -3);
  let built;
  try {
    built = mo.wasm(source, 'ic');
  } catch (e) {
    console.error(`cannot compile ${source}: ${e.message || e}`);
    process.exit(1);
  }
  fs.writeFileSync(path.join(out, `${name}.wasm`), built.wasm);
  fs.writeFileSync(path.join(out, `${name}.did`), built.candid);
  console.log(`built ${path.join(out, name)}.wasm (${built.wasm.length} bytes)`);
}
