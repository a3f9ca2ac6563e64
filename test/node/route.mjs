// The official Milvus Node SDK (@zilliz/milvus2-sdk-node) making calls that
// l7lb routes by database (the dbname metadata the SDK sends) or by
// collection (the collection_name of each request), for node_test.go's
// routing test. The collection exists on one cluster only, so an RPC
// that l7lb sent to the wrong cluster fails here.
//
// Environment:
//   L7LB_ADDR         l7lb's TLS address, host:port
//   L7LB_CA_FILE      PEM file of the CA that signed l7lb's certificate
//   L7LB_SERVER_NAME  the TLS server name (SNI and verification)
//   L7LB_DATABASE     the database (ClientConfig database); unset: default
//   L7LB_COLLECTION   a loaded collection with fields id (int64 primary
//                     key) and vector (float vector of L7LB_DIM)
//   L7LB_DIM          the vector dimension
//   L7LB_ROUNDS       how many rounds of the calls below to make
//
// Prints one JSON line {"ok":true,"calls":{method: count},...} and exits
// 0; on any error prints a message to stderr and exits 1. Bounded to 60 s.

import { MilvusClient, ErrorCode, CONNECT_STATUS } from '@zilliz/milvus2-sdk-node';

const TOTAL_MS = 60_000;
const RPC_MS = 10_000;

function fail(msg) {
  process.stderr.write(`route.mjs: FAIL: ${msg}\n`);
  process.exit(1);
}
const watchdog = setTimeout(() => fail(`did not finish within ${TOTAL_MS / 1000} s`), TOTAL_MS);

function env(name) {
  const v = process.env[name];
  if (!v) fail(`environment variable ${name} is not set`);
  return v;
}
const ADDR = env('L7LB_ADDR');
const CA_FILE = env('L7LB_CA_FILE');
const SERVER_NAME = env('L7LB_SERVER_NAME');
const DATABASE = process.env.L7LB_DATABASE || undefined;
const COLLECTION = env('L7LB_COLLECTION');
const DIM = Number(env('L7LB_DIM'));
const ROUNDS = Number(env('L7LB_ROUNDS'));

// The SDK turns UNIMPLEMENTED into an empty answer, and most failures into
// a status it returns rather than throws: check both.
function ok(name, res) {
  if (res && typeof res === 'object' && Object.keys(res).length === 0) {
    fail(`${name}: empty answer (the SDK reports a gRPC UNIMPLEMENTED status this way)`);
  }
  const st = res && res.status ? res.status : res;
  if (!st || st.error_code !== ErrorCode.SUCCESS) {
    fail(`${name}: server answered ${JSON.stringify(st)}`);
  }
  return res;
}

const calls = {};
async function call(name, fn) {
  let res;
  try {
    res = await fn();
  } catch (err) {
    fail(`${name}: ${err instanceof Error ? err.message : JSON.stringify(err)}`);
  }
  calls[name] = (calls[name] || 0) + 1;
  return ok(name, res);
}

const client = new MilvusClient({
  address: ADDR,
  ssl: true,
  tls: { rootCertPath: CA_FILE, serverName: SERVER_NAME },
  database: DATABASE,
  channelOptions: { 'grpc.enable_http_proxy': 0 },
  timeout: RPC_MS,
});
await client.connectPromise;
if (client.connectStatus !== CONNECT_STATUS.CONNECTED) {
  fail(`Connect: status ${CONNECT_STATUS[client.connectStatus]}`);
}

const vec = Array.from({ length: DIM }, (_, i) => i);
for (let r = 0; r < ROUNDS; r++) {
  const c = { collection_name: COLLECTION, timeout: RPC_MS };
  const has = await call('hasCollection', () => client.hasCollection(c));
  if (has.value !== true) fail(`hasCollection(${COLLECTION}) = ${JSON.stringify(has.value)}`);
  await call('describeCollection', () => client.describeCollection(c));
  await call('getLoadState', () => client.getLoadState(c));
  const s = await call('search', () =>
    client.search({ ...c, anns_field: 'vector', data: vec, limit: 3, output_fields: ['id'] }),
  );
  if (!Array.isArray(s.results) || s.results.length === 0) fail(`search: no hits: ${JSON.stringify(s)}`);
  await call('query', () => client.query({ ...c, filter: 'id in [1, 2]', output_fields: ['id'] }));
  const ins = await call('insert', () =>
    client.insert({ ...c, data: [{ id: 100000 + r, vector: vec }] }),
  );
  if (Number(ins.insert_cnt) !== 1) fail(`insert: insert_cnt ${ins.insert_cnt}`);
  await call('showCollections', () => client.showCollections({ timeout: RPC_MS }));
}

await client.closeConnection();
clearTimeout(watchdog);
process.stdout.write(
  JSON.stringify({ ok: true, database: DATABASE || 'default', collection: COLLECTION, calls }) + '\n',
);
process.exit(0);
