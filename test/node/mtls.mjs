// The official Milvus Node SDK (@zilliz/milvus2-sdk-node) against an l7lb
// listener with mutual-authentication verify: connect with the SDK's own
// client-certificate options (tls.privateKeyPath and tls.certChainPath,
// which make it a "two-way" TLS client), then list collections.
//
// Environment:
//   L7LB_ADDR         l7lb's TLS address, host:port
//   L7LB_CA_FILE      PEM file of the CA that signed l7lb's certificate
//   L7LB_SERVER_NAME  the TLS server name
//   L7LB_CLIENT_CERT  PEM client certificate (chain); unset: none
//   L7LB_CLIENT_KEY   its PEM private key; unset: none
//
// Prints one JSON line: {"ok":true,"collections":[...]} when the calls
// succeed, {"ok":false,"stage":...,"error":...} when they fail; exits 0
// either way, so that the Go test decides what was expected. Bounded to
// 30 s (exit 1).
//
// Run by mtls_test.go.

import { MilvusClient, CONNECT_STATUS } from '@zilliz/milvus2-sdk-node';

const TOTAL_MS = 30_000;
const RPC_MS = 5_000;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const watchdog = setTimeout(() => {
  process.stderr.write(`mtls.mjs: did not finish within ${TOTAL_MS / 1000} s\n`);
  process.exit(1);
}, TOTAL_MS);

const env = (n) => process.env[n] || '';
const tls = { rootCertPath: env('L7LB_CA_FILE'), serverName: env('L7LB_SERVER_NAME') };
if (env('L7LB_CLIENT_KEY')) {
  tls.privateKeyPath = env('L7LB_CLIENT_KEY');
  tls.certChainPath = env('L7LB_CLIENT_CERT');
}

let stage = 'connect';
try {
  const client = new MilvusClient({
    address: env('L7LB_ADDR'),
    ssl: true,
    tls,
    channelOptions: { 'grpc.enable_http_proxy': 0 },
    timeout: RPC_MS,
    maxRetries: 0,
  });
  await client.connectPromise;
  if (client.connectStatus !== CONNECT_STATUS.CONNECTED) {
    throw new Error(`connect status ${CONNECT_STATUS[client.connectStatus]}`);
  }
  stage = 'showCollections';
  const res = await client.showCollections({ timeout: RPC_MS });
  if (!res || !res.status || res.status.error_code !== 'Success') {
    throw new Error(`showCollections answered ${JSON.stringify(res)}`);
  }
  out({ ok: true, tls_mode: client.tlsMode, collections: (res.data || []).map((c) => c.name) });
  await client.closeConnection();
} catch (err) {
  out({ ok: false, stage, error: err instanceof Error ? err.message : JSON.stringify(err) });
}
clearTimeout(watchdog);
process.exit(0);
