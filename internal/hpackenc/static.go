package hpackenc

// staticName is one name of HPACK's static table (RFC 7541 Appendix A):
// the index of its first entry, and the values it has entries for.
type staticName struct {
	idx      uint8
	values   []string
	valueIdx []uint8
}

var staticTable = [...][2]string{
	{":authority", ""},
	{":method", "GET"},
	{":method", "POST"},
	{":path", "/"},
	{":path", "/index.html"},
	{":scheme", "http"},
	{":scheme", "https"},
	{":status", "200"},
	{":status", "204"},
	{":status", "206"},
	{":status", "304"},
	{":status", "400"},
	{":status", "404"},
	{":status", "500"},
	{"accept-charset", ""},
	{"accept-encoding", "gzip, deflate"},
	{"accept-language", ""},
	{"accept-ranges", ""},
	{"accept", ""},
	{"access-control-allow-origin", ""},
	{"age", ""},
	{"allow", ""},
	{"authorization", ""},
	{"cache-control", ""},
	{"content-disposition", ""},
	{"content-encoding", ""},
	{"content-language", ""},
	{"content-length", ""},
	{"content-location", ""},
	{"content-range", ""},
	{"content-type", ""},
	{"cookie", ""},
	{"date", ""},
	{"etag", ""},
	{"expect", ""},
	{"expires", ""},
	{"from", ""},
	{"host", ""},
	{"if-match", ""},
	{"if-modified-since", ""},
	{"if-none-match", ""},
	{"if-range", ""},
	{"if-unmodified-since", ""},
	{"last-modified", ""},
	{"link", ""},
	{"location", ""},
	{"max-forwards", ""},
	{"proxy-authenticate", ""},
	{"proxy-authorization", ""},
	{"range", ""},
	{"referer", ""},
	{"refresh", ""},
	{"retry-after", ""},
	{"server", ""},
	{"set-cookie", ""},
	{"strict-transport-security", ""},
	{"transfer-encoding", ""},
	{"user-agent", ""},
	{"vary", ""},
	{"via", ""},
	{"www-authenticate", ""},
}

// staticNames indexes staticTable by name. Entries with an empty value
// only name a field; an empty value is never matched exactly (no request
// sends ":authority" empty, and matching it would be wrong for names whose
// empty value means something).
var staticNames = func() map[string]*staticName {
	m := make(map[string]*staticName, staticLen)
	for i, f := range staticTable {
		idx := uint8(i + 1)
		s := m[f[0]]
		if s == nil {
			s = &staticName{idx: idx}
			m[f[0]] = s
		}
		if f[1] != "" {
			s.values = append(s.values, f[1])
			s.valueIdx = append(s.valueIdx, idx)
		}
	}
	return m
}()

// The static table has exactly staticLen entries: a missing line would
// shift every index after it.
var _ [staticLen]struct{} = [len(staticTable)]struct{}{}
