/* native_iir: a biquad cascade equal to scipy.signal.sosfilt (an eegkit native plugin).
 *
 * Stage "native_iir.sosfilt": parameter `sos` (list[float]) arrives as its length
 * followed by 6 numbers per section (b0 b1 b2 a0 a1 a2, a0 = 1). The state holds the
 * coefficients and two delays per channel and section, so chunked input gives the
 * same samples as the whole recording. Direct form II transposed, in scipy's order
 * of operations (bit-equal results without FMA contraction).
 *
 * No libc beyond malloc/free, so the same file builds for WebAssembly (`make wasm`,
 * clang's wasm32 target): there memory comes from a bump allocator.
 */
#include "eegkit_plugin.h"

#if defined(__wasm__)
extern unsigned char __heap_base;
static unsigned long heap_top = 0;

EEGKIT_API void *eegkit_alloc(int64_t n_bytes)
{
    if (!heap_top) heap_top = (unsigned long)&__heap_base;
    unsigned long start = (heap_top + 15) & ~15ul, end = start + (unsigned long)n_bytes;
    unsigned long have = __builtin_wasm_memory_size(0) * 65536ul;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (unsigned long)-1)
        return 0;
    heap_top = end;
    return (void *)start;
}
static void *zalloc(int64_t n_bytes) { return eegkit_alloc(n_bytes); } /* fresh pages are zero */
static void release(void *p) { (void)p; }
#else
#include <stdlib.h>
static void *zalloc(int64_t n_bytes) { return calloc(1, (size_t)n_bytes); }
static void release(void *p) { free(p); }
#endif

static void set_error(char *dst, const char *text)
{
    int i = 0;
    for (; text[i] && i < 159; i++) dst[i] = text[i];
    dst[i] = 0;
}

typedef struct {
    int64_t n_sections, n_channels;
    double *sos;   /* n_sections x 6 */
    double *zi;    /* n_channels x n_sections x 2 */
    char error[160];
} iir_state;

static char setup_error[160];

EEGKIT_API uint32_t eegkit_abi_version(void) { return EEGKIT_ABI_VERSION; }

EEGKIT_API const char *eegkit_last_error(void *state)
{
    return state ? ((iir_state *)state)->error : setup_error;
}

EEGKIT_API void sosfilt_free(void *state)
{
    iir_state *s = state;
    if (!s) return;
    release(s->sos);
    release(s->zi);
    release(s);
}

EEGKIT_API int32_t sosfilt_setup(const double *params, int64_t n_params, double sfreq,
                                 int64_t n_channels, void **out)
{
    (void)sfreq;
    int64_t n = n_params > 0 ? (int64_t)params[0] : 0;
    if (n <= 0 || n % 6 != 0 || n + 1 != n_params) {
        set_error(setup_error, "'sos' must hold 6 numbers per section (b0 b1 b2 a0 a1 a2)");
        return EEGKIT_ERR_PARAM;
    }
    for (int64_t k = 0; k < n / 6; k++) {
        if (params[1 + 6 * k + 3] != 1.0) {
            set_error(setup_error, "'sos': a0 (the 4th number of each section) must be 1");
            return EEGKIT_ERR_PARAM;
        }
    }
    iir_state *s = zalloc(sizeof *s);
    if (!s) return EEGKIT_ERR_MEMORY;
    s->n_sections = n / 6;
    s->n_channels = n_channels;
    s->sos = zalloc((int64_t)sizeof(double) * n);
    s->zi = zalloc((int64_t)sizeof(double) * n_channels * s->n_sections * 2);
    if (!s->sos || !s->zi) {
        sosfilt_free(s);
        return EEGKIT_ERR_MEMORY;
    }
    for (int64_t i = 0; i < n; i++) s->sos[i] = params[1 + i];
    *out = s;
    return EEGKIT_OK;
}

#define SOSFILT(NAME, T)                                                                  \
    EEGKIT_API int32_t NAME(void *state, T *x, int64_t n_channels, int64_t n_samples)     \
    {                                                                                     \
        iir_state *s = state;                                                             \
        if (n_channels != s->n_channels) {                                                \
            set_error(s->error, "the number of channels changed since setup");               \
            return EEGKIT_ERR_RUNTIME;                                                    \
        }                                                                                 \
        const double *sos = s->sos;                                                       \
        for (int64_t c = 0; c < n_channels; c++) {                                        \
            T *row = x + c * n_samples;                                                   \
            double *zi = s->zi + c * s->n_sections * 2;                                   \
            for (int64_t i = 0; i < n_samples; i++) {                                     \
                double cur = row[i];                                                      \
                for (int64_t k = 0; k < s->n_sections; k++) {                             \
                    const double *b = sos + 6 * k;                                        \
                    double *z = zi + 2 * k;                                               \
                    double y = b[0] * cur + z[0];                                         \
                    z[0] = b[1] * cur - b[4] * y + z[1];                                  \
                    z[1] = b[2] * cur - b[5] * y;                                         \
                    cur = y;                                                              \
                }                                                                         \
                row[i] = (T)cur;                                                          \
            }                                                                             \
        }                                                                                 \
        return EEGKIT_OK;                                                                 \
    }

SOSFILT(sosfilt_process_f64, double)
SOSFILT(sosfilt_process_f32, float)
