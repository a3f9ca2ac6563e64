// Package fakemilvus runs a stand-in Milvus cluster for tests, the demo and
// benchmarks: N replica listeners (the Milvus proxies) that share one
// in-memory engine, the way proxies share one cluster.
//
// Each replica behaves like a Milvus proxy where a balancer can trip:
//   - one TCP port serves gRPC (HTTP/2 preface) and REST (HTTP/1.1), like
//     Milvus's cmux share mode;
//   - keepalive enforcement MinTime 5 s / PermitWithoutStream (a client
//     pinging more often gets GOAWAY too_many_pings), server pings every 60 s;
//   - grpc.health.v1 answers NOT_SERVING with gRPC OK when not serving;
//   - Milvus methods answer in-body ServiceNotReady when not ready;
//   - Kill (abrupt close, in-flight RPCs die) versus Stop (GOAWAY, drain).
//
// Every reply carries the x-milvus-replica header so tests can count how a
// balancer split the load.
package fakemilvus
