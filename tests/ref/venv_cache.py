"""The cached virtual environment of the tests that need PyPI packages
(SAELens, sparsify, transformers): made with `python3 -m venv
--system-site-packages` on first use and filled by pip. Debian's h5py does
not import there (it is built against Debian's numpy, the venv brings a
newer one), so the tests keep HDF5 on the system python and run only their
PyPI part in the venv, exchanging .npz files.
"""
import os
import subprocess
import sys


def venv_python(venv, module, package):
    """The venv's python where `import module` works (installing package once), or None and why."""
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        p = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], capture_output=True, text=True)
        if p.returncode:
            return None, f"python3 -m venv failed: {p.stderr.strip()[-300:]} (Debian: apt-get install python3-venv)"
    ok = lambda: subprocess.run([py, "-c", f"import {module}"], capture_output=True).returncode == 0  # noqa: E731
    if ok():
        return py, ""
    if os.environ.get("STSAE_NO_PIP"):
        return None, f"{module} is not installed in {venv} and STSAE_NO_PIP is set"
    print(f"installing {package} into {venv} (once; PyTorch >= 2.6 comes with it) ...", flush=True)
    p = subprocess.run([py, "-m", "pip", "install", "--quiet", package], capture_output=True, text=True,
                       timeout=1500)
    if p.returncode or not ok():
        return None, (f"pip install {package} into {venv} failed (no network?): {p.stderr.strip()[-400:]}; "
                      f"to run this test: {py} -m pip install {package}")
    return py, ""
