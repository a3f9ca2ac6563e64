package config

// Action is what a rule does with a request it matched, from the ALB's
// actions.${name} annotation. A Rule without an Action forwards to its
// TargetGroup, which is also how a forward action to one target group is
// written.
type Action struct {
	Type ActionType `json:"type"`
	// TargetGroups of a weighted forward: every group gets a share of new
	// RPCs proportional to its weight; weight 0 gets none. At least one
	// weight is positive.
	TargetGroups []WeightedTargetGroup `json:"targetGroups,omitempty"`
	// FixedResponse answers the request from l7lb itself.
	FixedResponse *FixedResponse `json:"fixedResponse,omitempty"`
	// Redirect answers HTTP requests with a redirect (gRPC requests get
	// an error: no gRPC client follows redirects).
	Redirect *Redirect `json:"redirect,omitempty"`
}

// ActionType is the ALB's action type.
type ActionType string

const (
	ActionForward       ActionType = "forward"
	ActionFixedResponse ActionType = "fixed-response"
	ActionRedirect      ActionType = "redirect"
)

// WeightedTargetGroup is one entry of a weighted forward.
type WeightedTargetGroup struct {
	// TargetGroup names an entry of Snapshot.TargetGroups.
	TargetGroup string `json:"targetGroup"`
	// Weight is 0-999, as on the ALB.
	Weight int `json:"weight"`
}

// FixedResponse is the ALB's fixedResponseConfig.
type FixedResponse struct {
	// StatusCode is 200-599 (the ALB accepts 2XX, 4XX and 5XX).
	StatusCode  int    `json:"statusCode"`
	ContentType string `json:"contentType,omitempty"`
	MessageBody string `json:"messageBody,omitempty"`
}

// Redirect is the ALB's redirectConfig with its defaults filled in: every
// component may hold the placeholders #{protocol}, #{host}, #{port},
// #{path} (without its leading "/") and #{query}.
type Redirect struct {
	Protocol string `json:"protocol"` // HTTP, HTTPS or #{protocol}
	Host     string `json:"host"`
	Port     string `json:"port"`
	Path     string `json:"path"` // starts with "/"
	Query    string `json:"query"`
	// StatusCode is 301 or 302 (HTTP_301, HTTP_302).
	StatusCode int `json:"statusCode"`
}

// Condition is one extra match of a rule, ANDed with the rule's host and
// path and with its other conditions; its values are ORed.
type Condition struct {
	Field ConditionField `json:"field"`
	// HeaderName is the http-header condition's header, lower-case.
	HeaderName string `json:"headerName,omitempty"`
	// Values are patterns (host-header, http-header, path-pattern,
	// collection; "*" and "?" are wildcards), methods
	// (http-request-method) or CIDRs in canonical form (source-ip).
	Values []string `json:"values,omitempty"`
	// QueryString holds the query-string condition's pairs.
	QueryString []QueryPair `json:"queryString,omitempty"`
}

// QueryPair is a query-string pattern; an empty Key matches any key.
type QueryPair struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value"`
}

// ConditionField names what a condition looks at: the ALB's fields and
// l7lb's own ConditionCollection.
type ConditionField string

const (
	ConditionHostHeader        ConditionField = "host-header"
	ConditionHTTPHeader        ConditionField = "http-header"
	ConditionHTTPRequestMethod ConditionField = "http-request-method"
	ConditionPathPattern       ConditionField = "path-pattern"
	ConditionQueryString       ConditionField = "query-string"
	ConditionSourceIP          ConditionField = "source-ip"
	// ConditionCollection (l7lb.io/conditions.${name}) matches the
	// collection_name of a Milvus gRPC request's first message.
	ConditionCollection ConditionField = "collection"
)
