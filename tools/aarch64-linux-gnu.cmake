# CMake toolchain file: cross-compile mgbn and its C tests for aarch64 Linux
# with Debian's gcc-aarch64-linux-gnu; `ctest` then runs the tests under
# qemu-user (qemu-aarch64) with the aarch64 libraries from /usr/aarch64-linux-gnu.
#   cmake -S . -B build/aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=tools/aarch64-linux-gnu.cmake \
#         -DMGBN_BUILD_PYTHON=OFF -DMGBN_BUILD_TESTS=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(MGBN_AARCH64_SYSROOT /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH ${MGBN_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# qemu-user (7.2) aborts when a process that has threads forks, so the fork
# tests are skipped there; they run natively on x86-64 and on real aarch64.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${MGBN_AARCH64_SYSROOT}
    -E "MGBN_C_TESTS_SKIP=fork_after_pool_ran opencl_without_runtime")
