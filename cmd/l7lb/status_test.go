package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeAdmin answers the two endpoints `l7lb status` reads.
func fakeAdmin(t *testing.T, since time.Time) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/ingresses", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`[{"name":"milvus/milvus-demo","class":"alb","hosts":["milvus-demo.milvus.io"],"address":"127.0.0.1:8443","ports":[443],"since":"` + since.Format(time.RFC3339) + `"}]`))
	})
	mux.HandleFunc("GET /api/v1/targetgroups", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`[{"name":"milvus/milvus-demo:19530","algorithm":"weighted_random","targets":[
			{"address":"10.0.0.1:19530","state":"healthy","inFlight":3,"latencyEwmaMs":0.84,"weight":1,"anomalous":false,"lastMinute":{"rps":41.25,"p99Ms":1.5}},
			{"address":"10.0.0.2:19530","state":"unhealthy","reason":"Target.FailedHealthChecks","inFlight":0,"weight":1,"lastMinute":{"rps":0,"p99Ms":0}},
			{"address":"10.0.0.3:19530","state":"healthy","inFlight":1,"latencyEwmaMs":250,"weight":0.255,"anomalous":true,"lastMinute":{"rps":0.5,"p99Ms":300}}]},
			{"name":"milvus/empty:19530","algorithm":"round_robin","targets":[]}]`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestStatus(t *testing.T) {
	srv := fakeAdmin(t, time.Now().Add(-5*time.Minute))
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		lines []string // each must appear, columns separated by runs of spaces
	}{
		{"ingress and targets", []string{"--admin", strings.TrimPrefix(srv.URL, "http://")}, 0, []string{
			"NAME CLASS HOSTS ADDRESS PORTS AGE",
			"milvus/milvus-demo alb milvus-demo.milvus.io 127.0.0.1:8443 443 5m",
			"TARGET GROUP ALGORITHM HEALTHY",
			"milvus/milvus-demo:19530 weighted_random 2/3",
			"milvus/empty:19530 round_robin 0/0",
			"TARGET GROUP TARGET STATE REASON IN-FLIGHT RPS P99 EWMA WEIGHT",
			"milvus/milvus-demo:19530 10.0.0.1:19530 healthy - 3 41.2 1.5ms 840µs 100%",
			// Never answered: no EWMA.
			"milvus/milvus-demo:19530 10.0.0.2:19530 unhealthy Target.FailedHealthChecks 0 0.0 - - 100%",
			"milvus/milvus-demo:19530 10.0.0.3:19530 healthy - 1 0.5 300ms 250ms 25.5% anomalous",
			"milvus/empty:19530 <none> - - - - - - -",
		}},
		{"URL form", []string{"--admin", srv.URL + "/"}, 0, []string{"NAME CLASS HOSTS ADDRESS PORTS AGE"}},
		{"nobody listening", []string{"--admin", "127.0.0.1:1"}, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), append([]string{"status"}, tc.args...), &out, &errOut); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errOut.String())
			}
			var norm []string
			for _, l := range strings.Split(out.String(), "\n") {
				norm = append(norm, strings.Join(strings.Fields(l), " "))
			}
			all := strings.Join(norm, "\n")
			for _, want := range tc.lines {
				if !strings.Contains(all, want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestWeight(t *testing.T) {
	for _, tc := range []struct {
		w         float64
		anomalous bool
		want      string
	}{
		{1, false, "100%"},
		{0.5, false, "50%"},
		{0.255, false, "25.5%"},
		{0.01, true, "1% anomalous"},
		{1, true, "100% anomalous"}, // judged, not dimmed yet
	} {
		if got := weight(tc.w, tc.anomalous); got != tc.want {
			t.Errorf("weight(%v, %v) = %q, want %q", tc.w, tc.anomalous, got, tc.want)
		}
	}
}

func TestAge(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{30 * time.Second: "30s", 5 * time.Minute: "5m", 3 * time.Hour: "3h", 72 * time.Hour: "3d"} {
		if got := age(now.Add(-d), now); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}
