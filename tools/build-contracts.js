#!/usr/bin/env node
// Compile the project's Solidity test contracts with solc-js (from npm) into one JSON
// artifact file inside the Python package, so tests and the demo need no compiler.
// Usage: node tools/build-contracts.js [OUT.json]   (from anywhere; idempotent)
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const dir = path.join(__dirname, "contracts");
const out = process.argv[2] || path.join(__dirname, "..", "src", "st0x_liquidity", "data", "raindex_devnet_contracts.json");
const sources = {};
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(dir, file), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    viaIR: true,
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);
const artifacts = { _compiler: solc.version(), _note: "built by tools/build-contracts.js from tools/contracts/*.sol" };
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // libraries inlined, interfaces
    artifacts[name] = { source: file, abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
  }
}
fs.writeFileSync(out, JSON.stringify(artifacts, null, 1) + "\n");
console.log(`wrote ${Object.keys(artifacts).length - 2} contracts to ${path.relative(process.cwd(), out)}`);
