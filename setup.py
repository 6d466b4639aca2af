"""Build script: the h2odl_mpi package plus its cffi extension (the C kernel in csrc/).

Portable optimisation flags by default.  H2ODL_NATIVE=1 adds -march=native for a
cluster build on the nodes that will run it.
"""
from setuptools import setup, find_packages

setup(
    name="h2odl_mpi",
    version="0.1.0",
    description="H2O Deep Learning as an MPI program: Hogwild! C kernel, model averaging, HDF5 checkpoints",
    packages=find_packages(include=["h2odl_mpi", "h2odl_mpi.*"]),
    package_data={"h2odl_mpi": ["datasets/*/*", "datasets/README.md"]},
    python_requires=">=3.9",
    install_requires=["numpy", "cffi>=1.15", "h5py", "mpi4py"],
    setup_requires=["cffi>=1.15"],
    cffi_modules=["csrc/build_ffi.py:ffibuilder"],
    entry_points={"console_scripts": ["h2odl_mpi=h2odl_mpi.cli:main"]},
    zip_safe=False,
)
