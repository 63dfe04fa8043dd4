"""One parallel plan for every executor: the inputs cut into blocks at line starts, each block started with the state
the blocks before it leave, so any number of processes or machines give the one-process output byte for byte.

1. Plan (``cut``): every input is cut at line starts into blocks of about ``block_size`` bytes; small files are
   grouped into one block. A record is one line (a quote never spans lines in this reader), so no cut can split a
   record.
2. First pass (``tasks.summarize``), per block, in parallel: its rows and lines, its first error, and each key's window
   at its end (one key, ``None``, in unkeyed runs): the engine's state (``WindowState``).
3. Prefix combine (``merge``), in order: a key's window before block k is its window before block k-1 followed by
   block k-1's (``WindowState.then``); block k's engines start from those, and its rows are numbered from the sum.
4. Second pass (``tasks.process``), per block, in parallel: the rows through the engines, signals into a spill file
   (executors on this machine) or returned as bytes (a remote cluster).
5. Tallies merge with ``+``; signals are copied out in input order; skipped rows are reported in order with their
   line numbers in their file; under ``fail`` the first bad row in input order stops the run.

An unkeyed run over one input without signals needs neither row numbers nor keys: it skips the first pass, and each
block reads the ``window - 1`` valid rows before it backwards from its start instead (cheap for small windows).

Any other run without signals needs no row numbers either, and takes one pass: each block starts its engines empty,
so only the first ``window - 1`` values of each key in it lack their context; it returns them with its windows at its
end, and the parent, in order, counts their signals with engines started from the windows before the block.

A compressed input cannot be cut at byte offsets: it is one block of its own, read whole and decompressed by the task
(its first rows seeded from the first pass like any block's); its size is its compressed size.

The task functions take and return plain picklable records (``tasks.Block``, ``Summary``, ``Output``), so worker
processes on this machine and a Dask cluster (``executors``) run the same plan; the inputs must be readable by the
workers under the same names (absolute paths on a shared file system, or URLs).
"""
