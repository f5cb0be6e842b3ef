#!/usr/bin/env node
// Compile the project's Solidity test contracts with solc-js (from npm) into JSON artifact
// files inside the Python package, so tests and the demo need no compiler:
//   tools/contracts/*.sol      -> plugins/st0x_testing/src/st0x_testing/data/raindex_devnet_contracts.json
//   tools/contracts/cctp/*.sol -> plugins/st0x_testing/src/st0x_testing/data/cctp_devnet_contracts.json
// Usage: node tools/build-contracts.js                       builds both into data/
//        node tools/build-contracts.js RAINDEX_OUT.json      the raindex set only, there
//        node tools/build-contracts.js RAINDEX_OUT|- CCTP_OUT.json   ("-" skips the raindex set)
// (from anywhere; idempotent: the same sources give byte-identical files)
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const data = path.join(__dirname, "..", "plugins", "st0x_testing", "src", "st0x_testing", "data");

function build(dir, out, note) {
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
  // Sibling imports ("./X.sol") resolve to the same source keys, so nothing is read twice.
  const findImports = (p) => {
    const file = path.join(dir, p);
    return fs.existsSync(file) ? { contents: fs.readFileSync(file, "utf8") } : { error: `not found: ${p}` };
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);
  const artifacts = { _compiler: solc.version(), _note: note };
  for (const file of Object.keys(output.contracts).sort()) {
    const contracts = output.contracts[file];
    for (const name of Object.keys(contracts).sort()) {
      const c = contracts[name];
      if (!c.evm.bytecode.object) continue; // libraries inlined, interfaces
      artifacts[name] = { source: file, abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
    }
  }
  fs.writeFileSync(out, JSON.stringify(artifacts, null, 1) + "\n");
  console.log(`wrote ${Object.keys(artifacts).length - 2} contracts to ${path.relative(process.cwd(), out)}`);
}

const [raindexOut, cctpOut] = process.argv.slice(2);
if (raindexOut !== "-") {
  build(
    path.join(__dirname, "contracts"),
    raindexOut || path.join(data, "raindex_devnet_contracts.json"),
    "built by tools/build-contracts.js from tools/contracts/*.sol",
  );
}
if (cctpOut || !raindexOut) {
  build(
    path.join(__dirname, "contracts", "cctp"),
    cctpOut || path.join(data, "cctp_devnet_contracts.json"),
    "built by tools/build-contracts.js from tools/contracts/cctp/*.sol",
  );
}
