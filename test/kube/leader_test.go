package kube

import (
	"fmt"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLeaderWritesStatus: two replicas serve, only the Lease holder writes
// status (each publishes its own address, so the status says who wrote
// it); cancelling the leader releases the Lease and the other takes over.
func TestLeaderWritesStatus(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	startBackend(t, ctx)
	ic := &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "l7lb"},
		Spec:       networkingv1.IngressClassSpec{Controller: "l7lb.io/ingress-controller"},
	}
	if _, err := shared.client.NetworkingV1().IngressClasses().Create(ctx, ic, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ing := ingressFor("leader-test", "leader.milvus.io", nil)
	class := "l7lb"
	ing.Spec.IngressClassName = &class
	createIngress(t, ctx, ing)
	deleteIngressesAtEnd(t, ing.Name)
	a := startReplica(t, replicaOptions{identity: "a", publish: "a.l7lb.test", lease: "l7lb-leader-test"})
	b := startReplica(t, replicaOptions{identity: "b", publish: "b.l7lb.test", lease: "l7lb-leader-test"})
	status := func() string {
		got, err := shared.client.NetworkingV1().Ingresses("milvus").Get(ctx, "leader-test", metav1.GetOptions{})
		if err != nil || len(got.Status.LoadBalancer.Ingress) == 0 {
			return ""
		}
		return got.Status.LoadBalancer.Ingress[0].Hostname
	}
	var leader, follower *replica
	eventually(t, 30*time.Second, "one leader writing status", func() (bool, string) {
		switch {
		case a.ctl.IsLeader() && !b.ctl.IsLeader() && status() == "a.l7lb.test":
			leader, follower = a, b
		case b.ctl.IsLeader() && !a.ctl.IsLeader() && status() == "b.l7lb.test":
			leader, follower = b, a
		}
		return leader != nil, fmt.Sprintf("a leads %v, b leads %v, status %q", a.ctl.IsLeader(), b.ctl.IsLeader(), status())
	})
	// Both serve; only the leader writes. Churn the Ingress so the
	// follower has every chance to write if it would.
	want := status()
	for i := range 5 {
		cur, err := shared.client.NetworkingV1().Ingresses("milvus").Get(ctx, "leader-test", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Labels = map[string]string{"churn": fmt.Sprint(i)}
		if _, err := shared.client.NetworkingV1().Ingresses("milvus").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if got := status(); got != want {
			t.Fatalf("status changed to %q while %q leads", got, want)
		}
	}
	if follower.rt.Addrs()[443] == nil || leader.rt.Addrs()[443] == nil {
		t.Fatalf("both replicas should serve: leader %v, follower %v", leader.rt.Addrs(), follower.rt.Addrs())
	}
	leader.stop()
	eventually(t, 30*time.Second, "the other replica taking over", func() (bool, string) {
		s := status()
		return follower.ctl.IsLeader() && s != "" && s != want, fmt.Sprintf("follower leads %v, status %q", follower.ctl.IsLeader(), s)
	})
}
