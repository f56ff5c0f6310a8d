/*
 * eegkit_plugin.h: the frozen C ABI of eegkit native (and WebAssembly) stages.
 *
 * ABI 1.0. This header never changes within a major version: a minor version only
 * adds optional symbols. The host reads eegkit_abi_version() before anything else,
 * rejects a library whose major version differs from its own and warns when the
 * library's minor version is newer.
 *
 * A library provides the stages of one plugin. For a stage whose type is
 * "<plugin>.<stage>" it exports, with <stage> as the prefix:
 *
 *   int32_t <stage>_setup(const double *params, int64_t n_params, double sfreq,
 *                         int64_t n_channels, void **state);
 *   int32_t <stage>_process_f64(void *state, double *x, int64_t n_channels,
 *                               int64_t n_samples);
 *   int32_t <stage>_process_f32(void *state, float *x, int64_t n_channels,
 *                               int64_t n_samples);            (optional)
 *   void    <stage>_free(void *state);
 *
 * and once per library:
 *
 *   uint32_t    eegkit_abi_version(void);    return EEGKIT_ABI_VERSION
 *   const char *eegkit_last_error(void *state);   (optional) why the last call on
 *               `state` failed; state is NULL after a failed setup. The text must
 *               stay valid until the next call on that state.
 *
 * A WebAssembly module (wasm32) exports the same functions (pointers are i32,
 * int64_t is i64) plus its linear memory as "memory" and
 *
 *   void *eegkit_alloc(int64_t n_bytes);   memory the host writes parameters and
 *                                          samples into (0 when out of memory)
 *
 * and imports nothing. Each call runs under a fuel budget per chunk and a memory
 * limit; a trap, an exhausted budget or a non-zero return code disables the stage.
 *
 * Parameters come from the manifest's [stage.params], validated by the host, in
 * declaration order: an int, float or bool is one double; a list[int] or
 * list[float] is its length followed by its items; a str is the index of its
 * value in the parameter's `choices` (or -1 without choices).
 *
 * x is C-contiguous, channel after channel: sample i of channel c is
 * x[c * n_samples + i]. process works in place and keeps every per-channel
 * memory in its state, so a recording pushed in chunks of any size gives the
 * same samples as the recording processed at once. The host never calls
 * process while warming up, calls one state from one thread at a time, and
 * calls free exactly once per successful setup.
 *
 * A non-zero return code disables the stage (with eegkit_last_error's text);
 * the rest of the pipeline goes on. A crash (segfault, abort) in the library
 * takes its process with it: run untrusted native stages with
 * isolation = "process" in the manifest.
 */
#ifndef EEGKIT_PLUGIN_H
#define EEGKIT_PLUGIN_H

#include <stdint.h>

#define EEGKIT_ABI_MAJOR 1
#define EEGKIT_ABI_MINOR 0
#define EEGKIT_ABI_VERSION ((uint32_t)((EEGKIT_ABI_MAJOR << 16) | EEGKIT_ABI_MINOR))

#if defined(_WIN32)
#define EEGKIT_EXPORT __declspec(dllexport)
#else
#define EEGKIT_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
#define EEGKIT_API extern "C" EEGKIT_EXPORT
#else
#define EEGKIT_API EEGKIT_EXPORT
#endif

/* Return codes: 0 is success; anything else disables the stage. */
#define EEGKIT_OK 0
#define EEGKIT_ERR_PARAM 1
#define EEGKIT_ERR_MEMORY 2
#define EEGKIT_ERR_RUNTIME 3

EEGKIT_API uint32_t eegkit_abi_version(void);
EEGKIT_API const char *eegkit_last_error(void *state);
#if defined(__wasm__)
EEGKIT_API void *eegkit_alloc(int64_t n_bytes);
#endif

#endif /* EEGKIT_PLUGIN_H */
