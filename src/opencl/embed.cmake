# Writes OUTPUT, a C file defining mg_cl_kernels_source: the bytes of the
# INPUT files (src/opencl/kernels*.cl, "|"-separated, concatenated in that
# order: one OpenCL program) and a terminating zero. Run at build time:
#   cmake "-DINPUT=kernels.cl|kernels_data.cl" -DOUTPUT=kernels_cl.c -P embed.cmake
string(REPLACE "|" ";" inputs "${INPUT}")
set(hex "")
set(names "")
foreach(input IN LISTS inputs)
  file(READ "${input}" part HEX)
  string(APPEND hex "${part}0a")   # a newline between files
  get_filename_component(name "${input}" NAME)
  string(APPEND names " ${name}")
endforeach()
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}"
  "/* Generated from src/opencl/{${names} } by src/opencl/embed.cmake; do not edit. */\n"
  "const char mg_cl_kernels_source[] = {\n${bytes}0x00};\n")
