# GpuCore.cmake — the rest of a GPU-core build (-DSTSAE_GPU_CORE_ONLY=ON),
# included by the top-level CMakeLists.txt after the pure layers, the CUDA
# twins and the emulation; the full build's io, comm (MPI), deck, stages,
# tools, the program and the other benchmarks are left out.
#
# In:  the layers base, sae, vit (metrics where STSAE_WITH_METRICS), sae_cuda
#      and vit_cuda (where nvcc was found), STSAE_DEVICE_SOURCES/LIBS, and, from
#      cmake/CudaEmu.cmake, stsae_core_emu where STSAE_HAVE_CUDA_EMU.
# Out: stsae_comm holding only the device query (device.h: cuda/comm/device.cu
#      or src/comm/device_none.c; no MPI), stsae_core (every layer built, what
#      the tests and bench_step link, as in the full build), bench_step, the
#      kernel harnesses of dev/cuda/ (dev_*), and the tests of
#      tests/CMakeLists.txt that need none of the missing libraries: the GPU
#      tests (label cuda), their emulated twins (cuda-emu) and the pure-layer
#      unit tests (unit).
# For tests/gpu/run.sh on the GPU machine (CUDA, cuBLAS, CMake, Python; no
# MPI, HDF5, libyaml, cJSON, FFmpeg, OpenBLAS; nothing installable there).
stsae_layer(comm SOURCES ${STSAE_DEVICE_SOURCES} LAYERS base LIBS ${STSAE_DEVICE_LIBS})
add_library(stsae_core INTERFACE)
target_link_libraries(stsae_core INTERFACE stsae_comm stsae_vit stsae_sae stsae_base)
if(STSAE_WITH_METRICS)
  target_link_libraries(stsae_core INTERFACE stsae_metrics)
endif()
if(STSAE_HAVE_CUDA)
  target_link_libraries(stsae_core INTERFACE stsae_sae_cuda stsae_vit_cuda)
endif()
set(layers "base sae vit")
if(STSAE_WITH_METRICS)
  string(APPEND layers " metrics")
endif()
if(STSAE_HAVE_CUDA)
  string(APPEND layers " sae_cuda vit_cuda")
endif()
message(STATUS "stsae: GPU-core build (no MPI, HDF5, YAML, cJSON, FFmpeg): layers ${layers}, "
               "the device query; BLAS: ${STSAE_BLAS_NAIVE_SOURCES}${BLAS_LIBRARIES}")

add_executable(bench_step benchmarks/bench_step.c)
target_link_libraries(bench_step PRIVATE stsae_core)

include(CTest)
if(BUILD_TESTING)
  add_subdirectory(tests)
endif()
add_subdirectory(dev/cuda) # the kernel harnesses (tests/gpu/run.sh runs them)
