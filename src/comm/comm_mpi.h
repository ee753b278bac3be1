// comm_mpi.h — private to src/comm: what the MPI backend's files share. The
// MPI communicator behind a Comm (for h5_access.c, which hands it to HDF5),
// and whether the MPI library is Open MPI (OMPI_MCA_io applies).
#ifndef STSAE_COMM_MPI_H
#define STSAE_COMM_MPI_H

#include <mpi.h>

#include "stsae/comm/comm.h"

MPI_Comm comm_mpi(const Comm *c);
// 1 under Open MPI (MPI_Get_library_version; callable before MPI_Init).
int comm_is_open_mpi(void);

#endif
