package framing

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

var benchSizes = []int{1400, 64 << 10}

func BenchmarkWriteFrame(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			payload := make([]byte, size)
			w := NewWriter(io.Discard)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteFrame(TypeData, payload); err != nil {
					b.Fatal(err)
				}
			}
			w.Flush()
		})
	}
}

func BenchmarkReadFrame(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			var stream bytes.Buffer
			w := NewWriter(&stream)
			for range 8 {
				w.WriteFrame(TypeData, make([]byte, size))
			}
			w.Flush()
			r := NewReader(&replayReader{data: stream.Bytes()})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, p, err := r.ReadFrame(); err != nil || len(p) != size {
					b.Fatal(len(p), err)
				}
			}
		})
	}
}

// BenchmarkBatch compares flushing after each packet with flushing once per
// 32, counting the writes the underlying stream sees.
func BenchmarkBatch(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("%dperflush", batch), func(b *testing.B) {
			payload := make([]byte, 1400)
			cw := &countWriter{}
			w := NewWriter(cw)
			b.SetBytes(int64(len(payload) * batch))
			b.ReportAllocs()
			for b.Loop() {
				for range batch {
					if err := w.WriteFrame(TypeData, payload); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cw.writes)/float64(b.N*batch), "writes/packet")
		})
	}
}

// countWriter counts writes and discards the bytes, without allocating.
type countWriter struct{ writes int }

func (c *countWriter) Write(p []byte) (int, error) {
	c.writes++
	return len(p), nil
}
