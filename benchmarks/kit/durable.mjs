// The HotMesh TypeScript SDK's code workflows (MeshFlow) on the workload of
// `mesh bench durable`: a workflow function with ACTIVITIES sequential proxied activities (an
// async echo plus one), IN_FLIGHT clients each starting a workflow and awaiting its result
// until WORKFLOWS have finished. Prints one JSON line.
//
//   node durable.mjs --workflows 500 --activities 1 --in-flight 50
//
// The database comes from MESH_BENCH_PG (a JSON object of node-postgres client options);
// `mesh bench hotmesh --durable` (benchmarks/hotmesh.py) sets it from the mesh side's URL.
import pg from 'pg';
import { HotMesh, MeshFlow } from '@hotmeshio/hotmesh';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

const workflows = option('workflows', 500);
const length = option('activities', 1);
const inFlight = option('in-flight', 50);
const connection = { class: pg.Client, options: JSON.parse(process.env.MESH_BENCH_PG || '{}') };
const namespace = `hmflow${Math.random().toString(36).slice(2, 8)}`;
const taskQueue = 'bench-durable';

// The same shape as benchmarks/workflows.py: `step` and `chain`.
async function step(value) {
  return value + 1;
}

async function chain(count) {
  const acts = MeshFlow.workflow.proxyActivities({ activities: { step } });
  let value = 0;
  for (let index = 0; index < count; index++) {
    value = await acts.step(value);
  }
  return value;
}

const worker = await MeshFlow.Worker.create({
  connection,
  namespace,
  taskQueue,
  workflow: chain,
  options: { logLevel: 'error' },
});
await worker.run();
const client = new MeshFlow.Client({ connection });

const latencies = [];
let remaining = workflows;
let failed = 0;
async function run() {
  while (remaining > 0) {
    remaining -= 1;
    const begun = performance.now();
    try {
      const handle = await client.workflow.start({
        namespace,
        args: [length],
        taskQueue,
        workflowName: 'chain',
        workflowId: HotMesh.guid(),
      });
      if ((await handle.result()) !== length) failed += 1;
    } catch (error) {
      failed += 1;
    }
    latencies.push(performance.now() - begun);
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: inFlight }, run));
const elapsed = (performance.now() - started) / 1000;

latencies.sort((a, b) => a - b);
const percentile = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
const round = (x, digits = 1) => Number(x.toFixed(digits));
console.log(
  JSON.stringify({
    system: 'hotmesh-meshflow',
    version: '0.3.32',
    workflows,
    activities: length,
    workflows_per_s: round(latencies.length / elapsed),
    elapsed_s: round(elapsed, 3),
    failed,
    latency_ms: { p50: round(percentile(50)), p90: round(percentile(90)), p99: round(percentile(99)) },
    settings: { in_flight: inFlight, node: process.version, function: 'async echo' },
  }),
);
await MeshFlow.shutdown();
process.exit(0);
