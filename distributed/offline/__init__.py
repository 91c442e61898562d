"""Offline multitask data: TD-MPC2's published dataset chunks <-> the Zarr replay store.
Training from a store (offline, or mixed with online runners) is a configuration of the one
loop (distributed/loop.py: `num_runners=0 offline_data=...`, or `offline_data=... offline_ratio=...`).

| module | what |
|---|---|
| `tdmpc2_format.py` | the chunk-file layout (keys, shapes, dtypes), `read_chunk` / `write_chunk` with checks |
| `importer.py` | `import_tdmpc2(files, shard)`: streaming, resumable import into a replay shard |
| `exporter.py` | `export_tdmpc2(shards, out_dir)`: a store's episodes back out as chunk files |
"""
