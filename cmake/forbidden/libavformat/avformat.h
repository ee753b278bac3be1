// Placed on the include path of the pure-compute layers (src/base, src/sae,
// src/vit, src/metrics) ahead of the system's: those layers know no MPI,
// HDF5, YAML, JSON or FFmpeg (CMakeLists.txt, "the layers").
#error "<libavformat/avformat.h> included in a pure-compute layer of stsae: move this code to io, comm, deck, stages or tools"
