package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/l7lb/l7lb/internal/demo"
)

// TestSeedInCluster is the seed's steps 3 and 4 against a real API server:
// kubectl apply -f ingress.yaml (the seed's bytes), ADDRESS appears, the Go
// SDK connects through TLS with the server name and its RPCs are split a
// third each; then endpoint scaling under load, a bad Ingress next to good
// ones, and deleting the Ingress.
func TestSeedInCluster(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	b := startBackend(t, ctx)
	r := startReplica(t, replicaOptions{identity: "seed-a", publish: "127.0.0.1", classes: []string{"alb"}, lease: "l7lb-seed"})
	deleteIngressesAtEnd(t, "milvus-demo", "keeper", "broken") // the subtests create the last two

	// Step 3: the seed's file, byte for byte, with kubectl.
	dir := t.TempDir()
	file := filepath.Join(dir, "ingress.yaml")
	if err := os.WriteFile(file, demo.SeedIngress, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := shared.kubectlRun(ctx, dir, "apply", "-f", "ingress.yaml"); err != nil {
		t.Fatalf("kubectl apply -f ingress.yaml: %v\n%s", err, out)
	}
	ings := shared.client.NetworkingV1().Ingresses("milvus")
	eventually(t, 60*time.Second, "ADDRESS in the Ingress status", func() (bool, string) {
		ing, err := ings.Get(ctx, "milvus-demo", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := ing.Status.LoadBalancer.Ingress
		return len(st) == 1 && st[0].IP == "127.0.0.1" && len(st[0].Ports) == 1 && st[0].Ports[0].Port == 443, fmt.Sprintf("%+v", st)
	})
	out, err := shared.kubectlRun(ctx, dir, "-f", "ingress.yaml", "get")
	if err != nil {
		t.Fatalf("kubectl -f ingress.yaml get: %v\n%s", err, out)
	}
	t.Logf("kubectl -f ingress.yaml get:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME CLASS HOSTS ADDRESS PORTS AGE" {
		t.Fatalf("kubectl get columns differ from the seed's:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 6 || f[0] != "milvus-demo" || f[1] != "alb" || f[2] != serverName || f[3] != "127.0.0.1" || f[4] != "80" {
		t.Fatalf("kubectl get row = %q; want milvus-demo alb %s 127.0.0.1 80 AGE", lines[1], serverName)
	}

	// Step 4: the Go SDK through TLS with the server name.
	addr := r.addr(t)
	cli, err := demo.Connect(ctx, addr, serverName, b.ca.Pool())
	if err != nil {
		t.Fatalf("SDK connect through %s: %v", addr, err)
	}
	defer cli.Close(context.Background())
	list := func(ctx context.Context) error {
		_, err := cli.ListCollections(ctx, milvusclient.NewListCollectionOption())
		return err
	}
	before := b.served()
	const n = 300
	for i := range n {
		if err := list(ctx); err != nil {
			t.Fatalf("RPC %d: %v", i, err)
		}
	}
	after := b.served()
	for i := range after {
		got := after[i] - before[i]
		if got < n/3-3 || got > n/3+3 {
			t.Fatalf("replica %d served %d of %d RPCs; want a third each (%v → %v)", i, got, n, before, after)
		}
	}

	t.Run("ScaleUnderLoad", func(t *testing.T) { scaleUnderLoad(t, ctx, b, r, list) })
	t.Run("BadIngressIsolated", func(t *testing.T) { badIngressIsolated(t, ctx, r, list) })
	t.Run("DeleteStopsServing", func(t *testing.T) { deleteStopsServing(t, ctx, r, list) })
}

// scaleUnderLoad: 3 endpoints → 1 (draining, then gone) → 3 with RPCs
// flowing all the time, and not one failing.
func scaleUnderLoad(t *testing.T, ctx context.Context, b *backend, r *replica, call func(context.Context) error) {
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := call(ctx); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	defer func() { // also when a wait below fails the test
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	waitTargets := func(ready int) {
		eventually(t, 30*time.Second, fmt.Sprintf("%d ready targets", ready), func() (bool, string) {
			gr, ga := r.readyTargets()
			return gr == ready, fmt.Sprintf("%d ready of %d", gr, ga)
		})
	}
	time.Sleep(300 * time.Millisecond)
	b.setSlice(t, ctx, 1, false) // terminating: drain
	b.setSlice(t, ctx, 2, false)
	waitTargets(1)
	time.Sleep(300 * time.Millisecond)
	b.deleteSlice(t, ctx, 1)
	b.deleteSlice(t, ctx, 2)
	waitTargets(1)
	mid := b.served()
	time.Sleep(500 * time.Millisecond)
	now := b.served()
	if now[1] != mid[1] || now[2] != mid[2] || now[0] == mid[0] {
		t.Errorf("with one endpoint only replica 0 should serve: %v → %v", mid, now)
	}
	b.setSlice(t, ctx, 1, true)
	b.setSlice(t, ctx, 2, true)
	waitTargets(3)
	back := b.served()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	end := b.served()
	for i := range end {
		if end[i] == back[i] {
			t.Errorf("replica %d got no RPCs after scaling back to 3: %v → %v", i, back, end)
		}
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d RPCs failed while scaling 3→1→3; first: %v", failed.Load(), ok.Load()+failed.Load(), *firstErr.Load())
	}
	t.Logf("scaling 3→1→3 under load: %d RPCs, 0 failed", ok.Load())
}

// ingressFor is an Ingress of class alb on the seed's listener for host.
func ingressFor(name, host string, extra map[string]string) *networkingv1.Ingress {
	class := "alb"
	prefix := networkingv1.PathTypePrefix
	ann := map[string]string{
		"alb.ingress.kubernetes.io/backend-protocol-version": "GRPC",
		"alb.ingress.kubernetes.io/target-type":              "ip",
		"alb.ingress.kubernetes.io/scheme":                   "internet-facing",
		"alb.ingress.kubernetes.io/listen-ports":             `[{"HTTPS":443}]`,
		"alb.ingress.kubernetes.io/certificate-arn":          seedARN,
	}
	for k, v := range extra {
		ann[k] = v
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "milvus", Name: name, Annotations: ann},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "milvus-demo", Port: networkingv1.ServiceBackendPort{Number: 19530}},
				}}},
			}}}},
		},
	}
}

// badIngressIsolated: an Ingress with a bad annotation gets a Warning
// Event naming it, and the seed's Ingress keeps serving.
func badIngressIsolated(t *testing.T, ctx context.Context, r *replica, call func(context.Context) error) {
	ings := shared.client.NetworkingV1().Ingresses("milvus")
	// keeper stays on port 443 after the seed's Ingress is deleted, so the
	// listener (and its certificate) remain and a missing rule shows.
	createIngress(t, ctx, ingressFor("keeper", "keeper.milvus.io", nil))
	createIngress(t, ctx, ingressFor("broken", "broken.milvus.io", map[string]string{"alb.ingress.kubernetes.io/backend-protocol-version": "GRPCX"}))
	events := shared.client.CoreV1().Events("milvus")
	sel := fields.Set{"involvedObject.name": "broken", "involvedObject.kind": "Ingress", "type": "Warning"}.String()
	eventually(t, 30*time.Second, "a Warning Event on Ingress broken", func() (bool, string) {
		list, err := events.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if strings.Contains(e.Message, "backend-protocol-version") && strings.Contains(e.Message, "GRPCX") {
				t.Logf("event %s: %s", e.Reason, e.Message)
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(list.Items))
	})
	for i := range 30 {
		if err := call(ctx); err != nil {
			t.Fatalf("the seed's Ingress stopped serving next to a broken one (RPC %d): %v", i, err)
		}
	}
	ing, err := ings.Get(ctx, "broken", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ing.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("a broken Ingress that was never served got an ADDRESS: %+v", ing.Status.LoadBalancer.Ingress)
	}
}

// deleteStopsServing: without the Ingress its host has no rule, and the
// SDK's RPCs get UNIMPLEMENTED from l7lb.
func deleteStopsServing(t *testing.T, ctx context.Context, r *replica, call func(context.Context) error) {
	if err := shared.client.NetworkingV1().Ingresses("milvus").Delete(ctx, "milvus-demo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "UNIMPLEMENTED after deleting the Ingress", func() (bool, string) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := call(cctx)
		var se interface{ GRPCStatus() *status.Status }
		if errors.As(err, &se) && se.GRPCStatus().Code() == codes.Unimplemented {
			return true, ""
		}
		if s, ok := status.FromError(err); ok && s.Code() == codes.Unimplemented {
			return true, ""
		}
		return false, fmt.Sprintf("%v", err)
	})
}
