// The official Milvus Node SDK (@zilliz/milvus2-sdk-node) talking to Milvus
// through l7lb with TLS and a server name, as the seed's PyMilvus step does:
// create a collection, insert, index, load, search (checked against a
// brute-force L2 search done here), query, drop.
//
// Environment:
//   L7LB_ADDR         l7lb's TLS address, host:port
//   L7LB_CA_FILE      PEM file of the CA that signed l7lb's certificate
//   L7LB_SERVER_NAME  the TLS server name (SNI and verification), e.g. milvus-demo.milvus.io
//
// Prints one JSON line {"ok":true,...} describing what was checked and exits
// 0; on any error or wrong answer prints a message to stderr and exits 1.
// The whole run is bounded to 60 s.
//
// Run by node_test.go; by hand: `npm ci --prefix test/node`, then start
// `go run ./cmd/l7lb-demo -keep-running` and set the variables it prints.

import {
  MilvusClient,
  DataType,
  ErrorCode,
  CONNECT_STATUS,
} from '@zilliz/milvus2-sdk-node';

const TOTAL_MS = 60_000; // the whole script
const RPC_MS = 10_000; // each RPC
const DIM = 8;
const ROWS = 100;
const TOPK = 5;
const SEARCHES = 3;

function fail(msg) {
  process.stderr.write(`sdk.mjs: FAIL: ${msg}\n`);
  process.exit(1);
}

const watchdog = setTimeout(
  () => fail(`did not finish within ${TOTAL_MS / 1000} s`),
  TOTAL_MS,
);

function env(name) {
  const v = process.env[name];
  if (!v) fail(`environment variable ${name} is not set`);
  return v;
}

const ADDR = env('L7LB_ADDR');
const CA_FILE = env('L7LB_CA_FILE');
const SERVER_NAME = env('L7LB_SERVER_NAME');

// step runs one SDK call with its own deadline and names it in any failure.
async function step(name, fn, ms = RPC_MS) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } catch (err) {
    const detail =
      err instanceof Error
        ? err.message
        : err && typeof err === 'object'
          ? Object.keys(err).length === 0
            ? EMPTY_HINT
            : JSON.stringify(err)
          : String(err);
    fail(`${name}: ${detail}`);
  } finally {
    clearTimeout(timer);
  }
}

// The SDK turns a gRPC UNIMPLEMENTED status into an OK reply with an empty
// message for every method but AlterCollectionSchema and ClientHeartbeat
// (dist/milvus/utils/Grpc.js, getRetryInterceptor), so an RPC that l7lb could
// not route, or that the server lacks, shows up only as an empty answer.
const EMPTY_HINT =
  'empty answer: the SDK reports a gRPC UNIMPLEMENTED status this way ' +
  '(no l7lb rule for the request\'s :authority and path, or a method the server does not implement)';

// ok checks a status the SDK returns (rather than throws): a bare
// {error_code, reason} or a response with .status.
function ok(name, res) {
  if (res && typeof res === 'object' && Object.keys(res).length === 0) {
    fail(`${name}: ${EMPTY_HINT}`);
  }
  const st = res && res.status ? res.status : res;
  if (!st || st.error_code !== ErrorCode.SUCCESS) {
    fail(`${name}: server answered ${JSON.stringify(st)}`);
  }
  return res;
}

function expect(cond, msg) {
  if (!cond) fail(msg);
}

// A deterministic pseudo-random generator, so every run checks the same data.
let seed = 20240607;
function rand() {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}
// float32 values, as Milvus stores them, so both sides compute the same distances.
const f32 = (x) => Math.fround(x);
const randVec = () => Array.from({ length: DIM }, () => f32(rand() * 2 - 1));

function l2(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

const collection = `node_sdk_${process.pid}_${Date.now()}`;
const rows = Array.from({ length: ROWS }, (_, i) => ({
  id: i + 1,
  vector: randVec(),
  tag: `tag-${i + 1}`,
}));

// Only what a Node user following the seed writes: ssl and tls.serverName.
// grpc-js uses serverName for SNI and certificate checks but still sends the
// IP address as :authority (build/src/channel-credentials.js,
// internal-channel.js); l7lb routes such requests by the TLS server name.
// grpc.enable_http_proxy: 0 keeps an http(s)_proxy in the environment from
// sending this loopback test anywhere else.
const client = new MilvusClient({
  address: ADDR,
  ssl: true,
  tls: { rootCertPath: CA_FILE, serverName: SERVER_NAME },
  channelOptions: {
    'grpc.enable_http_proxy': 0,
  },
  timeout: RPC_MS,
});

const checks = [];

// The constructor sends Connect; a real answer carries an identifier.
await step('connect', () => client.connectPromise);
expect(
  client.connectStatus === CONNECT_STATUS.CONNECTED,
  `Connect: no identifier in the answer (connect status ${CONNECT_STATUS[client.connectStatus]}); ${EMPTY_HINT}`,
);
checks.push('connect');

ok(
  'createCollection',
  await step('createCollection', () =>
    client.createCollection({
      collection_name: collection,
      fields: [
        { name: 'id', data_type: DataType.Int64, is_primary_key: true, autoID: false },
        { name: 'vector', data_type: DataType.FloatVector, dim: DIM },
        { name: 'tag', data_type: DataType.VarChar, max_length: 64 },
      ],
      timeout: RPC_MS,
    }),
  ),
);
checks.push('createCollection');

const ins = ok(
  'insert',
  await step('insert', () =>
    client.insert({ collection_name: collection, data: rows, timeout: RPC_MS }),
  ),
);
expect(
  Number(ins.insert_cnt) === ROWS,
  `insert: insert_cnt is ${ins.insert_cnt}, want ${ROWS}`,
);
checks.push('insert');

ok(
  'createIndex',
  await step('createIndex', () =>
    client.createIndex({
      collection_name: collection,
      field_name: 'vector',
      index_type: 'FLAT',
      metric_type: 'L2',
      timeout: RPC_MS,
    }),
  ),
);
checks.push('createIndex');

// loadCollectionSync: LoadCollection, then GetLoadingProgress until 100%.
ok(
  'loadCollectionSync',
  await step(
    'loadCollectionSync',
    () => client.loadCollectionSync({ collection_name: collection, timeout: RPC_MS }),
    30_000,
  ),
);
checks.push('loadCollectionSync');

// Searches, each checked against a brute-force L2 top-k over the inserted rows.
for (let q = 0; q < SEARCHES; q++) {
  const query = randVec();
  const res = ok(
    `search #${q + 1}`,
    await step(`search #${q + 1}`, () =>
      client.search({
        collection_name: collection,
        anns_field: 'vector',
        data: query,
        limit: TOPK,
        metric_type: 'L2',
        // The SDK builds each hit from the returned field columns only
        // (dist/milvus/utils/Search.js formatSearchResult; it ignores
        // results.ids), and Milvus 2.6 returns the primary key as a column
        // only when asked for it, so ask for "id" to get hit.id.
        output_fields: ['id', 'tag'],
        consistency_level: 'Strong',
        timeout: RPC_MS,
      }),
    ),
  );
  const want = rows
    .map((r) => ({ id: r.id, tag: r.tag, d: l2(query, r.vector) }))
    .sort((a, b) => a.d - b.d || a.id - b.id)
    .slice(0, TOPK);
  const hits = res.results;
  expect(
    Array.isArray(hits) && hits.length === TOPK,
    `search #${q + 1}: got ${JSON.stringify(hits)}, want ${TOPK} hits`,
  );
  for (let i = 0; i < TOPK; i++) {
    const h = hits[i];
    const w = want[i];
    const gotID = Number(h.id);
    // Equal distances may come in either order; compare distances, and ids
    // where the distances differ.
    const tol = 1e-4 * Math.max(1, w.d);
    expect(
      Math.abs(Number(h.score) - w.d) <= tol,
      `search #${q + 1} hit ${i}: distance ${h.score}, brute force says ${w.d} (id ${w.id}); hits ${JSON.stringify(hits)}`,
    );
    const tie = want.some((x) => x.id === gotID && Math.abs(x.d - w.d) <= tol);
    expect(
      gotID === w.id || tie,
      `search #${q + 1} hit ${i}: id ${h.id}, brute force says ${w.id}; hits ${JSON.stringify(hits)}`,
    );
    const row = rows[gotID - 1];
    expect(
      row && h.tag === row.tag,
      `search #${q + 1} hit ${i}: tag ${JSON.stringify(h.tag)} for id ${gotID}, want ${JSON.stringify(row && row.tag)}`,
    );
  }
}
checks.push(`search x${SEARCHES} top${TOPK} == brute-force L2`);

const qr = ok(
  'query',
  await step('query', () =>
    client.query({
      collection_name: collection,
      filter: 'id in [1,2,3]',
      output_fields: ['id', 'tag'],
      consistency_level: 'Strong',
      timeout: RPC_MS,
    }),
  ),
);
const got = (qr.data || [])
  .map((r) => ({ id: Number(r.id), tag: r.tag }))
  .sort((a, b) => a.id - b.id);
expect(
  JSON.stringify(got) ===
    JSON.stringify([1, 2, 3].map((id) => ({ id, tag: `tag-${id}` }))),
  `query id in [1,2,3]: got ${JSON.stringify(qr.data)}, want ids 1,2,3 with tags tag-1,tag-2,tag-3`,
);
checks.push('query id in [1,2,3] -> 3 rows, right tags');

ok(
  'dropCollection',
  await step('dropCollection', () =>
    client.dropCollection({ collection_name: collection, timeout: RPC_MS }),
  ),
);
const has = ok(
  'hasCollection',
  await step('hasCollection', () =>
    client.hasCollection({ collection_name: collection, timeout: RPC_MS }),
  ),
);
expect(has.value === false, `hasCollection after drop: ${JSON.stringify(has.value)}, want false`);
checks.push('dropCollection');

await step('closeConnection', async () => client.closeConnection(), 5_000);
clearTimeout(watchdog);

process.stdout.write(
  JSON.stringify({
    ok: true,
    sdk: '@zilliz/milvus2-sdk-node',
    address: ADDR,
    server_name: SERVER_NAME,
    collection,
    rows: ROWS,
    dim: DIM,
    inserted: Number(ins.insert_cnt),
    searches: SEARCHES,
    topk: TOPK,
    query_rows: got.length,
    checks,
  }) + '\n',
);
process.exit(0);
