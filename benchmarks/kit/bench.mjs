// The HotMesh TypeScript SDK on the workload of `mesh bench workflows`: a trigger followed by
// STEPS sequential worker activities (an async echo), IN_FLIGHT clients each publishing a job
// and waiting for its result until WORKFLOWS have finished. Prints one JSON line.
//
//   node bench.mjs --workflows 2000 --steps 1 --in-flight 50
//
// The database comes from MESH_BENCH_PG (a JSON object of node-postgres client options);
// `mesh bench hotmesh` (benchmarks/hotmesh.py) sets it from the URL the mesh side uses.
import yaml from 'js-yaml';
import pg from 'pg';
import { HotMesh } from '@hotmeshio/hotmesh';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

const workflows = option('workflows', 2000);
const steps = option('steps', 1);
const inFlight = option('in-flight', 50);
const connection = { class: pg.Client, options: JSON.parse(process.env.MESH_BENCH_PG || '{}') };
const appId = `hmbench${Math.random().toString(36).slice(2, 8)}`;

// The same graph as bench_manifest in benchmarks/graphs.py.
const activities = { start: { type: 'trigger' } };
const transitions = {};
let previous = 'start';
for (let index = 1; index <= steps; index++) {
  const name = `step${index}`;
  activities[name] = {
    type: 'worker',
    topic: `${appId}.step`,
    input: { maps: { n: index, seed: '{start.output.data.seed}' } },
    job: { maps: { [name]: '{$self.output.data.n}' } },
  };
  transitions[previous] = [{ to: name }];
  previous = name;
}
const manifest = {
  app: {
    id: appId,
    version: '1',
    graphs: [{ subscribes: `${appId}.run`, activities, transitions }],
  },
};

const hotMesh = await HotMesh.init({
  appId,
  logLevel: 'error',
  engine: { connection },
  workers: [
    {
      topic: `${appId}.step`,
      connection,
      callback: async (message) => ({
        code: 200,
        status: 'success',
        metadata: { ...message.metadata },
        data: { n: message.data.n },
      }),
    },
  ],
});
await hotMesh.deploy(yaml.dump(manifest)); // YAML text must start with 'app:'
await hotMesh.activate('1');

const latencies = [];
let remaining = workflows;
let failed = 0;
async function client() {
  while (remaining > 0) {
    remaining -= 1;
    const begun = performance.now();
    try {
      await hotMesh.pubsub(`${appId}.run`, { seed: remaining }, null, 120000);
    } catch (error) {
      failed += 1;
    }
    latencies.push(performance.now() - begun);
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: inFlight }, client));
const elapsed = (performance.now() - started) / 1000;

latencies.sort((a, b) => a - b);
const percentile = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
const round = (x, digits = 1) => Number(x.toFixed(digits));
console.log(
  JSON.stringify({
    system: 'hotmesh',
    version: '0.3.32',
    workflows,
    steps,
    workflows_per_s: round(latencies.length / elapsed),
    elapsed_s: round(elapsed, 3),
    failed,
    latency_ms: { p50: round(percentile(50)), p90: round(percentile(90)), p99: round(percentile(99)) },
    settings: { in_flight: inFlight, node: process.version, function: 'async echo' },
  }),
);
await HotMesh.stop();
process.exit(0);
