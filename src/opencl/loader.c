/* loader.c - opens libOpenCL at run time and looks up the entry points.
 *
 * mgbn never links libOpenCL: without an OpenCL runtime the library loads and
 * runs on the CPU as before, and only the OpenCL entry points fail, with
 * MG_ERR_BACKEND and a message naming what to install. MGBN_OPENCL_LIBRARY
 * names the library to open instead of the system's (used by the tests to
 * simulate a machine without OpenCL). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "opencl.h"

mg_cl_api_t mg_cl;

#define INSTALL_HINT "install an OpenCL runtime, e.g. Debian's pocl-opencl-icd and ocl-icd-libopencl1"

static const char *const default_names[] = {
#ifdef __APPLE__
    "/System/Library/Frameworks/OpenCL.framework/OpenCL",
#endif
    "libOpenCL.so.1",
    "libOpenCL.so",
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static mg_status load_status;
static char load_message[512];   /* kept for every later call, on any thread */

static void load(void) {
    const char *chosen = getenv("MGBN_OPENCL_LIBRARY");
    void *handle = NULL;
    if (chosen && chosen[0]) {
        handle = dlopen(chosen, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            snprintf(load_message, sizeof load_message,
                     "cannot load the OpenCL library MGBN_OPENCL_LIBRARY=%s (%s); " INSTALL_HINT,
                     chosen, dlerror());
            load_status = MG_ERR_BACKEND;
            return;
        }
    } else {
        for (size_t i = 0; i < sizeof default_names / sizeof *default_names && !handle; i++)
            handle = dlopen(default_names[i], RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            snprintf(load_message, sizeof load_message,
                     "cannot load libOpenCL.so.1 (%s); " INSTALL_HINT, dlerror());
            load_status = MG_ERR_BACKEND;
            return;
        }
    }
    mg_cl_api_t api;
#define MG_CL_LOOKUP(ret, name, params)                                                       \
    *(void **)&api.name = dlsym(handle, #name);                                               \
    if (!api.name) {                                                                          \
        snprintf(load_message, sizeof load_message,                                           \
                 "the OpenCL library has no %s: it is not an OpenCL 1.2 runtime; " INSTALL_HINT, \
                 #name);                                                                      \
        load_status = MG_ERR_BACKEND;                                                         \
        dlclose(handle);                                                                      \
        return;                                                                               \
    }
    MG_CL_FUNCTIONS(MG_CL_LOOKUP)
#undef MG_CL_LOOKUP
    mg_cl = api;   /* the handle stays open for the life of the process */
    load_status = MG_OK;
}

mg_status mg_cl_load(const char **message) {
    pthread_once(&once, load);
    *message = load_message;
    return load_status;
}
