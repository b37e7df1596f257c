# Writes OUTPUT, a C file defining mg_cl_kernels_source: the bytes of INPUT
# (src/opencl/kernels.cl) and a terminating zero. Run at build time:
#   cmake -DINPUT=kernels.cl -DOUTPUT=kernels_cl.c -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}"
  "/* Generated from src/opencl/kernels.cl by src/opencl/embed.cmake; do not edit. */\n"
  "const char mg_cl_kernels_source[] = {\n${bytes}0x00};\n")
