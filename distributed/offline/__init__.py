"""Offline multitask data: TD-MPC2's published dataset chunks <-> the Zarr replay store, and
training from a store without env runners (offline) or alongside them (mixed).

| module | what |
|---|---|
| `tdmpc2_format.py` | the chunk-file layout (keys, shapes, dtypes), `read_chunk` / `write_chunk` with checks |
| `importer.py` | `import_tdmpc2(files, shard)`: streaming, resumable import into a replay shard |
| `exporter.py` | `export_tdmpc2(shards, out_dir)`: a store's episodes back out as chunk files |
| `train.py` | `OfflineTrainer` (store only, no envs) and `MixedTrainer` (store + online runners) |
"""
