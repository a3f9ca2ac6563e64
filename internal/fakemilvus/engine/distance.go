package engine

import "math"

// score computes the similarity Milvus reports for a metric. L2 is the
// squared Euclidean distance (Milvus does not take the root); IP is the dot
// product; COSINE is the dot product of the normalised vectors.
func score(metric string, a, b []float32) float32 {
	var dot, na, nb, l2 float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
		d := x - y
		l2 += d * d
	}
	switch metric {
	case "L2":
		return float32(l2)
	case "COSINE":
		if na == 0 || nb == 0 {
			return 0
		}
		return float32(dot / (math.Sqrt(na) * math.Sqrt(nb)))
	}
	return float32(dot)
}

// smallerIsBetter: L2 is a distance (ascending results), IP and COSINE are
// similarities (descending results).
func smallerIsBetter(metric string) bool { return metric == "L2" }

func roundTo(v float32, decimals int) float32 {
	if decimals < 0 {
		return v
	}
	p := math.Pow(10, float64(decimals))
	return float32(math.Round(float64(v)*p) / p)
}
