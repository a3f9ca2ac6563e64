package controller

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/l7lb/l7lb/internal/config"
)

// Event reasons, LBC's where LBC has one.
const (
	reasonFailed     = "FailedBuildModel"
	reasonWarning    = "IgnoredConfiguration"
	reasonReconciled = "SuccessfullyReconciled"
)

// maxEventMessage keeps messages under the API's 1 KiB note limit.
const maxEventMessage = 1000

// EventRecorder is the part of client-go's record.EventRecorder used here.
type EventRecorder interface {
	Event(object k8sruntime.Object, eventtype, reason, message string)
}

// publishEvents reports each Ingress's problems and warnings once per
// distinct message (a resync does not repeat them), and a Normal event
// when an Ingress becomes served without problems. Only the leader calls
// it.
func (c *Controller) publishEvents(v *view, r *result) {
	seen := map[types.UID]bool{}
	for _, ing := range v.all {
		key := ing.Namespace + "/" + ing.Name
		var typ, reason, msg string
		switch {
		case len(r.failed[key]) > 0:
			typ, reason, msg = corev1.EventTypeWarning, reasonFailed, joinProblems(r.failed[key])
			if r.served[key] != nil {
				msg += " (serving its last good version)"
			}
		case len(r.warnings[key]) > 0:
			typ, reason, msg = corev1.EventTypeWarning, reasonWarning, joinProblems(r.warnings[key])
		case r.served[key] != nil:
			typ, reason, msg = corev1.EventTypeNormal, reasonReconciled, "Successfully reconciled"
		default:
			continue
		}
		seen[ing.UID] = true
		if c.lastEvent[ing.UID] == msg {
			continue
		}
		c.lastEvent[ing.UID] = msg
		c.events.Event(ingressRef(ing), typ, reason, msg)
	}
	for uid := range c.lastEvent {
		if !seen[uid] {
			delete(c.lastEvent, uid)
		}
	}
}

func joinProblems(ps []config.Problem) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		parts = append(parts, p.Error())
	}
	msg := strings.Join(parts, "; ")
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage-3] + "..."
	}
	return msg
}

// ingressRef is the Ingress as an Event's object; the recorder reads its
// kind, so set it (cached objects have no TypeMeta).
func ingressRef(ing *networkingv1.Ingress) *networkingv1.Ingress {
	cp := ing.DeepCopy()
	cp.Kind, cp.APIVersion = "Ingress", networkingv1.SchemeGroupVersion.String()
	return cp
}
