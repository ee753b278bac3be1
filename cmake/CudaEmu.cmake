# CudaEmu.cmake — the CUDA emulation build (README "GPU code without a GPU"):
# the .cu files of cuda/ compiled as host C++ against the stand-ins of
# cuda/emu/ and HIP-CPU, so that the GPU tests run on the CPU (label
# cuda-emu, tests/CMakeLists.txt). Included by the top-level CMakeLists.txt
# after the layers base and sae.
#
# In:  option STSAE_CUDA_EMU (ON by default; nothing to do unless HIP-CPU and
#      TBB are found), HIP_CPU_DIR (default ../shared/vendor/hip-cpu beside
#      the source tree), STSAE_SAE_CUDA_SOURCES and STSAE_VIT_CUDA_SOURCES
#      (the .cu files of the sae_cuda and vit_cuda layers), TBB's CMake
#      package (Debian: libtbb-dev), a C++17 compiler.
# Out: STSAE_HAVE_CUDA_EMU (ON when built) and, then, the libraries
#        stsae_sae_cuda_emu   the CUDA twins of the step (emulated)
#        stsae_vit_cuda_emu   the backbones' GPU forward (emulated)
#        stsae_device_emu     cuda/comm/device.cu (device.h: one device)
#        stsae_comm_device_emu(_planted)  cuda/comm/comm_device.cu over
#                             cuda/emu/nccl.h, NCCL's stand-in over MPI (not
#                             in GPU-core builds, which have no MPI)
#        stsae_core_emu       these, with the layers sae, vit and base: what a GPU
#                             test links instead of stsae_core;
#        stsae_core_emu_planted  the same built with STSAE_PLANTED (where the
#                             planted twins are built), for planted-fault tests;
#      and the function stsae_cuda_emu_target(NAME [EXECUTABLE] files.cu...
#      [LINK libs...]) for more (a test's own .cu file: tests/CMakeLists.txt);
#      otherwise STSAE_CUDA_EMU_MISSING, the sentence saying what to install
#      (the tests print it and skip).
# Every .cu, .cuh and .h of cuda/ (cuda/emu/ aside) is rewritten into
# <build>/cuda_emu/cuda/ by cmake/CudaEmuRewrite.cmake at build time (launches
# and extern __shared__, the syntax C++ lacks); that mirror, not cuda/, is on
# the include path, so a header's launches are rewritten too; the headers of
# dev/cuda/ (the kernel harnesses' common.h) likewise, beside their .cu. No
# CUDA toolkit is needed. Not in sanitizer or fuzz builds (fibers switch
# stacks under ASan).
option(STSAE_CUDA_EMU "run the GPU tests on the CPU through HIP-CPU (label cuda-emu) where HIP-CPU and TBB are found" ON)
set(HIP_CPU_DIR "${PROJECT_SOURCE_DIR}/../shared/vendor/hip-cpu" CACHE PATH
    "HIP-CPU (header-only HIP runtime on the CPU) for the CUDA emulation")
set(STSAE_HAVE_CUDA_EMU OFF)
set(STSAE_CUDA_EMU_MISSING "")

if(NOT STSAE_CUDA_EMU)
  set(STSAE_CUDA_EMU_MISSING "the CUDA emulation is off (-DSTSAE_CUDA_EMU=OFF)")
elseif(STSAE_SANITIZE OR STSAE_FUZZ)
  set(STSAE_CUDA_EMU_MISSING "no CUDA emulation in sanitizer or fuzz builds")
elseif(NOT EXISTS "${HIP_CPU_DIR}/include/hip/hip_runtime.h")
  set(STSAE_CUDA_EMU_MISSING "HIP-CPU not found at HIP_CPU_DIR=${HIP_CPU_DIR}: get https://github.com/ROCm/HIP-CPU "
                             "(header-only; include/, src/include/, external/) and configure with -DHIP_CPU_DIR=<it>")
else()
  find_package(TBB QUIET CONFIG)
  include(CheckLanguage)
  check_language(CXX)
  if(NOT TBB_FOUND)
    set(STSAE_CUDA_EMU_MISSING "TBB not found, which HIP-CPU needs (Debian: libtbb-dev)")
  elseif(NOT CMAKE_CXX_COMPILER)
    set(STSAE_CUDA_EMU_MISSING "no C++17 compiler (Debian: g++)")
  else()
    set(STSAE_HAVE_CUDA_EMU ON)
  endif()
endif()

if(NOT STSAE_HAVE_CUDA_EMU)
  message(STATUS "stsae: no CUDA emulation (the cuda-emu tests will skip): ${STSAE_CUDA_EMU_MISSING}")
  return()
endif()
enable_language(CXX)
find_package(Threads REQUIRED)
message(STATUS "stsae: CUDA emulation on the CPU (HIP-CPU ${HIP_CPU_DIR}, TBB ${TBB_VERSION})")

# the rewritten mirror: <build>/cuda_emu/<path in the source tree>
set(STSAE_CUDA_EMU_DIR ${PROJECT_BINARY_DIR}/cuda_emu)
# stsae_cuda_emu_rewrite(REL OUTVAR): the rule making the mirror of REL
function(stsae_cuda_emu_rewrite rel outvar)
  if(rel MATCHES "\\.cu$")
    set(out ${STSAE_CUDA_EMU_DIR}/${rel}.cpp)
  else()
    set(out ${STSAE_CUDA_EMU_DIR}/${rel})
  endif()
  set(${outvar} ${out} PARENT_SCOPE)
  get_property(done DIRECTORY PROPERTY STSAE_CUDA_EMU_RULES)
  if(out IN_LIST done)
    return()
  endif()
  set_property(DIRECTORY APPEND PROPERTY STSAE_CUDA_EMU_RULES ${out})
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${PROJECT_SOURCE_DIR}/${rel} -DOUT=${out}
            -P ${PROJECT_SOURCE_DIR}/cmake/CudaEmuRewrite.cmake
    DEPENDS ${PROJECT_SOURCE_DIR}/${rel} ${PROJECT_SOURCE_DIR}/cmake/CudaEmuRewrite.cmake
    COMMENT "CUDA emulation: rewriting ${rel}" VERBATIM)
endfunction()
file(GLOB_RECURSE stsae_emu_inputs CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR}
     ${PROJECT_SOURCE_DIR}/cuda/*.cuh ${PROJECT_SOURCE_DIR}/cuda/*.h ${PROJECT_SOURCE_DIR}/dev/cuda/*.h)
list(FILTER stsae_emu_inputs EXCLUDE REGEX "^cuda/emu/")
set(stsae_emu_headers "")
foreach(rel ${stsae_emu_inputs})
  stsae_cuda_emu_rewrite(${rel} out)
  list(APPEND stsae_emu_headers ${out})
endforeach()
add_custom_target(stsae_cuda_emu_headers DEPENDS ${stsae_emu_headers})

# stsae_cuda_emu_target(NAME [EXECUTABLE] files.cu... [LINK libs...]): files
# relative to the source tree, compiled for the CPU into the static library
# (or the program) NAME
function(stsae_cuda_emu_target name)
  cmake_parse_arguments(E "EXECUTABLE" "" "LINK" ${ARGN})
  set(srcs "")
  foreach(cu ${E_UNPARSED_ARGUMENTS})
    stsae_cuda_emu_rewrite(${cu} out)
    list(APPEND srcs ${out})
  endforeach()
  if(E_EXECUTABLE)
    add_executable(${name} ${srcs})
  else()
    add_library(${name} STATIC ${srcs})
  endif()
  add_dependencies(${name} stsae_cuda_emu_headers)
  set_target_properties(${name} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF
                                           LINKER_LANGUAGE CXX)
  # the stand-ins first, then the rewritten cuda/ headers; HIP-CPU as a system
  # directory (its own warnings are not ours)
  target_include_directories(${name} BEFORE PRIVATE ${PROJECT_SOURCE_DIR}/cuda/emu ${STSAE_CUDA_EMU_DIR}/cuda)
  target_include_directories(${name} SYSTEM PRIVATE ${HIP_CPU_DIR}/include)
  target_compile_definitions(${name} PUBLIC STSAE_HAVE_CUDA STSAE_CUDA_EMU=1)
  # HIP-CPU's attributes on kernels (simd clones) and the kernels' int/unsigned
  # mixing with threadIdx (unsigned on a GPU too) are not worth warnings here
  target_compile_options(${name} PRIVATE -Wno-attributes -Wno-sign-compare -Wno-unused-function)
  target_link_libraries(${name} PUBLIC ${E_LINK} TBB::tbb Threads::Threads)
endfunction()

stsae_cuda_emu_target(stsae_sae_cuda_emu ${STSAE_SAE_CUDA_SOURCES} LINK stsae_sae stsae_base)
stsae_cuda_emu_target(stsae_device_emu cuda/comm/device.cu LINK stsae_base)
stsae_cuda_emu_target(stsae_vit_cuda_emu ${STSAE_VIT_CUDA_SOURCES} LINK stsae_vit stsae_base)
add_library(stsae_core_emu INTERFACE)
target_link_libraries(stsae_core_emu INTERFACE stsae_sae_cuda_emu stsae_vit_cuda_emu stsae_device_emu stsae_sae
                                               stsae_vit stsae_base)
# the planted twin (common.h's PLANTED; the CUDA layer's faults are named
# cuda_*, so the CPU layers linked beside it stay right): tests must fail on it
if("planted" IN_LIST STSAE_TWINS)
  stsae_cuda_emu_target(stsae_sae_cuda_emu_planted ${STSAE_SAE_CUDA_SOURCES}
                        LINK stsae_sae_planted stsae_base_planted)
  stsae_cuda_emu_target(stsae_device_emu_planted cuda/comm/device.cu LINK stsae_base_planted)
  stsae_cuda_emu_target(stsae_vit_cuda_emu_planted ${STSAE_VIT_CUDA_SOURCES} LINK stsae_vit_planted stsae_base_planted)
  target_compile_definitions(stsae_sae_cuda_emu_planted PUBLIC STSAE_PLANTED)
  target_compile_definitions(stsae_vit_cuda_emu_planted PUBLIC STSAE_PLANTED)
  add_library(stsae_core_emu_planted INTERFACE)
  target_link_libraries(stsae_core_emu_planted INTERFACE stsae_sae_cuda_emu_planted stsae_vit_cuda_emu_planted
                                                         stsae_device_emu_planted stsae_sae_planted stsae_vit_planted
                                                         stsae_base_planted)
endif()
# the NCCL backend of comm_device.h over the stand-in (cuda/emu/nccl.h, MPI);
# its calls to comm.h resolve in the program's stsae_comm (tests/CMakeLists.txt)
if(TARGET MPI::MPI_C)
  foreach(which ${STSAE_TWINS})
    stsae_twin(twin ${which})
    stsae_cuda_emu_target(stsae_comm_device_emu${twin} cuda/comm/comm_device.cu LINK stsae_base${twin} MPI::MPI_C)
    target_compile_definitions(stsae_comm_device_emu${twin} PRIVATE STSAE_HAVE_NCCL)
  endforeach()
endif()
