// h5_access.h — parallel HDF5 over a Comm: the one place where an HDF5 file
// is handed an MPI communicator, so that io/ (the feature file's writer)
// opens parallel files without naming MPI.
//
// In:  a Comm (the world, or a group: a file is opened collectively by the
//      ranks of one communicator; hpc.md §1.7).
// Out: a file-access property list for H5Fcreate / H5Fopen: MPI-IO over the
//      ranks of c (H5Pset_fapl_mpio, no hints). Under Open MPI that is ROMIO
//      unless the user chose otherwise (comm_world_init sets the default);
//      when OMPI_MCA_io names ompio, world rank 0 warns once, at the first
//      list made, that OMPIO can lose a failed collective write.
// Every rank of c must then make the same collective HDF5 calls in the same
// order (hpc.md §1.1); the caller agrees on each outcome (comm_agree_msg).
#ifndef STSAE_COMM_H5_ACCESS_H
#define STSAE_COMM_H5_ACCESS_H

#include <hdf5.h>

#include "stsae/comm/comm.h"

// The list (H5Pclose it after the open), or -1 when HDF5 refused it.
hid_t comm_h5_fapl(Comm *c);

#endif
