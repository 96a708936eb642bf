// Validate GLB files with Khronos glTF-Validator (npm gltf-validator); print one JSON report per file as a JSON array.
// Usage: node twin_viewer/tiles/validate_glb.mjs file1.glb [file2.glb ...]
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const validator = require("gltf-validator");

const reports = [];
for (const path of process.argv.slice(2)) {
  const data = new Uint8Array(await readFile(path));
  const report = await validator.validateBytes(data, { uri: path, maxIssues: 100 });
  reports.push(report);
}
process.stdout.write(JSON.stringify(reports));
