package finchreauth

import (
	"fmt"
	"hash/maphash"
	"net/http"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// tokenLen is the length of the tokens these benchmarks make up: a UUID,
// the shape of Finch's access tokens.
const tokenLen = 36

// fillToken writes the i'th made-up token of a family (kind is one hex
// digit: latched and healthy tokens never coincide) into buf.
func fillToken(buf *[tokenLen]byte, kind byte, i uint64) {
	const hex = "0123456789abcdef"
	copy(buf[:], "00000000-0000-4000-8000-000000000000")
	buf[0] = hex[kind&15]
	for p := tokenLen - 1; i > 0; p-- {
		if buf[p] == '-' {
			continue
		}
		buf[p] = hex[i&15]
		i >>= 4
	}
}

// tokenString views buf as a string without copying it: the latch hashes
// tokens and keeps none, so a lookup costs no allocation of the caller's.
func tokenString(buf *[tokenLen]byte) string { return unsafe.String(&buf[0], tokenLen) }

// scatter maps the k'th lookup to an entry index in [0, n): a stride by a
// large prime, coprime with every n used here, so that successive lookups
// touch entries added far apart and no lookup finds the previous one's
// memory in cache.
func scatter(k uint64, n int) uint64 { return k * 2654435761 % uint64(n) }

// BenchmarkManyTokens is issue 4's benchmark 5. For each latch size it
// measures the live heap per entry (B/entry, after a GC, latched tokens
// with distinct 36-character connection ids), the lookup of a latched token
// (hit) and of a healthy one (miss) in scattered order, and the 200
// pass-through of a healthy token through a Transport holding that latch
// (healthy-200; entries=0 is the empty-latch fast path).
func BenchmarkManyTokens(b *testing.B) {
	for _, n := range []int{0, 1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			base := &cannedRT{status: 200, header: http.Header{"Content-Type": {"application/json"}}}
			t := &Transport{Base: base}
			defer t.Close()
			t.init()
			now := time.Now()

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var buf [tokenLen]byte
			for i := range n {
				fillToken(&buf, 0xa, uint64(i))
				// Connection ids are strings of their own, as decoded from
				// /introspect.
				t.latch.add(tokenString(&buf), fmt.Sprintf("c0000000-0000-4000-8000-%012d", i), true, time.Hour, now)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perEntry := 0.0
			if n > 0 {
				perEntry = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
			}

			if n > 0 {
				b.Run("op=hit", func(b *testing.B) {
					b.ReportAllocs()
					var buf [tokenLen]byte
					var k uint64
					for b.Loop() {
						fillToken(&buf, 0xa, scatter(k, n))
						k++
						if t.latch.get(tokenString(&buf)) == nil {
							b.Fatal("latched token not found")
						}
					}
					b.ReportMetric(perEntry, "B/entry")
				})
				b.Run("op=miss", func(b *testing.B) {
					b.ReportAllocs()
					var buf [tokenLen]byte
					var k uint64
					for b.Loop() {
						fillToken(&buf, 0xb, k)
						k++
						if t.latch.get(tokenString(&buf)) != nil {
							b.Fatal("healthy token found")
						}
					}
				})
			}
			if n > 0 {
				// The floor: a plain, pointer-free Go map of n entries,
				// looked up by the same 64-bit maphash of the same tokens in
				// the same order. What it loses from 1k to 1M entries is the
				// memory hierarchy's toll, which no table of n entries
				// escapes.
				floor := make(map[uint64]uint64, n)
				seed := maphash.MakeSeed()
				for i := range n {
					fillToken(&buf, 0xa, uint64(i))
					floor[maphash.String(seed, tokenString(&buf))] = uint64(i)
				}
				b.Run("op=floor-hit", func(b *testing.B) {
					b.ReportAllocs()
					var buf [tokenLen]byte
					var k uint64
					for b.Loop() {
						fillToken(&buf, 0xa, scatter(k, n))
						k++
						if _, ok := floor[maphash.String(seed, tokenString(&buf))]; !ok {
							b.Fatal("not found")
						}
					}
				})
				b.Run("op=floor-miss", func(b *testing.B) {
					b.ReportAllocs()
					var buf [tokenLen]byte
					var k uint64
					for b.Loop() {
						fillToken(&buf, 0xb, k)
						k++
						if _, ok := floor[maphash.String(seed, tokenString(&buf))]; ok {
							b.Fatal("found")
						}
					}
				})
				runtime.KeepAlive(floor)
			}
			b.Run("op=healthy-200", func(b *testing.B) {
				// One request whose token changes on every call, among
				// 4,096 healthy tokens made beforehand.
				req := benchRequest(b, "x")
				values := make([]string, 4096)
				for i := range values {
					fillToken(&buf, 0xb, uint64(i))
					values[i] = "Bearer " + string(buf[:])
				}
				auth := req.Header["Authorization"]
				b.ReportAllocs()
				var k int
				for b.Loop() {
					auth[0] = values[k&4095]
					k++
					resp, err := roundTrip(t, req)
					if err != nil || resp.StatusCode != 200 {
						b.Fatal(resp, err)
					}
					resp.Body.Close()
				}
			})
			runtime.KeepAlive(t)
		})
	}
}
