"""The runs that drive the flow: batch, live, and the parallel plan on workers or Dask."""
