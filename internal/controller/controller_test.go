package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// eventually polls cond every 10 ms for at most d.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func TestNewNeedsClientAndNamespace(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		err  string
	}{
		{"no client", Options{Namespace: "l7lb"}, "no Kubernetes client"},
		{"no namespace", Options{Client: fake.NewClientset()}, "no namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("New: %v, want %q", err, tt.err)
			}
		})
	}
}

// TestRun: the whole loop over a fake clientset (informers, Lease leader
// election, Events through the broadcaster, status, readiness), with and
// without a Lease.
func TestRun(t *testing.T) {
	for _, lease := range []string{"", "l7lb-leader"} {
		t.Run(fmt.Sprintf("lease %q", lease), func(t *testing.T) {
			good := ing("good", "good.milvus.io", nil)
			bad := ing("broken", "broken.milvus.io", map[string]string{"alb.ingress.kubernetes.io/backend-protocol-version": "GRPCX"})
			client := fake.NewClientset(objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), good, bad})...)
			c, err := New(Options{
				Client: client, Namespace: "l7lb", Identity: "pod-a", LeaseName: lease,
				PublishAddresses: []string{"127.0.0.1"},
				Log:              slog.New(slog.NewTextHandler(io.Discard, nil)),
				Debounce:         5 * time.Millisecond,
				LeaseDuration:    2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			health := httptest.NewRecorder()
			c.HealthHandler().ServeHTTP(health, httptest.NewRequest("GET", "/readyz", nil))
			if health.Code != http.StatusServiceUnavailable {
				t.Errorf("/readyz before sync: %d", health.Code)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			app := &fakeApplier{}
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx, app) }()

			ings := client.NetworkingV1().Ingresses(testNS)
			eventually(t, 10*time.Second, "status on the good Ingress", func() (bool, string) {
				i, err := ings.Get(ctx, "good", metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				st := i.Status.LoadBalancer.Ingress
				return len(st) == 1 && st[0].IP == "127.0.0.1", fmt.Sprintf("ready %v, leader %v, status %+v", c.Ready(), c.IsLeader(), st)
			})
			eventually(t, 10*time.Second, "a Warning Event on the broken Ingress", func() (bool, string) {
				list, err := client.CoreV1().Events(testNS).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, err.Error()
				}
				for _, e := range list.Items {
					if e.InvolvedObject.Name == "broken" && e.InvolvedObject.Kind == "Ingress" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "GRPCX") {
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d events", len(list.Items))
			})
			if i, _ := ings.Get(ctx, "broken", metav1.GetOptions{}); len(i.Status.LoadBalancer.Ingress) != 0 {
				t.Errorf("broken Ingress got a status: %+v", i.Status.LoadBalancer.Ingress)
			}
			if !c.Ready() || c.Applied() == 0 {
				t.Errorf("ready %v after %d snapshots", c.Ready(), c.Applied())
			}
			health = httptest.NewRecorder()
			c.HealthHandler().ServeHTTP(health, httptest.NewRequest("GET", "/readyz", nil))
			if health.Code != http.StatusOK {
				t.Errorf("/readyz after sync: %d", health.Code)
			}
			if lease != "" {
				l, err := client.CoordinationV1().Leases("l7lb").Get(ctx, lease, metav1.GetOptions{})
				if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "pod-a" {
					t.Errorf("Lease %+v, %v", l, err)
				}
			}

			// The good Ingress leaves the class: its status is cleared.
			applied := c.Applied()
			cur, err := ings.Get(ctx, "good", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			other := "nginx"
			cur.Spec.IngressClassName = &other
			if _, err := ings.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "status cleared when the Ingress leaves the class", func() (bool, string) {
				i, err := ings.Get(ctx, "good", metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				return len(i.Status.LoadBalancer.Ingress) == 0 && c.Applied() > applied, fmt.Sprintf("%+v", i.Status.LoadBalancer.Ingress)
			})

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if c.Ready() {
				t.Error("still ready after shutdown")
			}
		})
	}
}
