// The core's single-precision FMA peak, for the "% of peak" figures of the GEMM rows:
// ten independent chains of vector FMAs (enough to hide the latency on every x86 core we meet),
// with the widest vectors the compiler was allowed (AVX-512 or AVX2).
//
//     gcc -O2 -march=native benches/peak/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#ifdef __AVX512F__
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define STORE _mm512_storeu_ps
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define STORE _mm256_storeu_ps
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define F(x) x = FMA(x, a, b);

int main(void) {
    vec c0 = SET1(0), c1 = SET1(1), c2 = SET1(2), c3 = SET1(3), c4 = SET1(4);
    vec c5 = SET1(5), c6 = SET1(6), c7 = SET1(7), c8 = SET1(8), c9 = SET1(9);
    vec a = SET1(0.999999f), b = SET1(1e-7f);
    long n = 100000000;
    for (int round = 0; round < 3; round++) {
        double t = now();
        for (long i = 0; i < n; i++) {
            F(c0) F(c1) F(c2) F(c3) F(c4) F(c5) F(c6) F(c7) F(c8) F(c9)
            // Keeps the ten chains in registers and the loop from being folded away.
            __asm__ volatile("" : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5),
                             "+x"(c6), "+x"(c7), "+x"(c8), "+x"(c9));
        }
        t = now() - t;
        printf("%d-lane FMA peak: %.1f GFLOP/s\n", LANES, n * 10.0 * 2 * LANES / t / 1e9);
    }
    vec s = ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(ADD(c6, c7), ADD(c8, c9))));
    float v[LANES];
    STORE(v, s);
    return v[0] == 12345.0f;
}
