// Preloaded into the soak's server process (NODE_OPTIONS=--import): on SIGUSR2 it runs a full garbage collection
// and prints the memory left as one JSON log line. The soak compares these, the live heap, rather than samples of
// the heap's sawtooth, whose teeth fall wherever the machine's speed puts them.
/* global process */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
let collections = 0;
process.on("SIGUSR2", () => {
  gc();
  const { heapUsed, rss } = process.memoryUsage();
  const line = { msg: "soak: full gc", collection: ++collections, heapUsed, rss };
  process.stdout.write(`${JSON.stringify(line)}\n`);
});
