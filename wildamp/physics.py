"""MJX model creation and contact normal forces per named geom (MuJoCo C and MJX).

Why this module exists: the original project read foot contact forces from a single pyramid facet
and so saw a quarter of the true force (ARCHITECTURE.md §3.8). Here the normal force of a contact is
decoded exactly as MuJoCo does it:

- pyramidal cone: a contact of dimension ``condim > 1`` owns ``2 * (condim - 1)`` constraint rows
  (pyramid facets) starting at ``contact.efc_address``; its normal force is the *sum* of those rows
  (``mj_contactForce`` / ``mjx._src.support._decode_pyramid`` semantics). ``condim == 1`` owns one row.
- elliptic cone: the first of the ``condim`` rows is the normal force.

A contact that is not active (MJX allocates every candidate contact statically; one whose distance is
not below its margin has no force) contributes exactly zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx


def make_mjx_model(model: mujoco.MjModel) -> mjx.Model:
    """Put a MuJoCo model on the default JAX device using MJX's JAX implementation (never Warp)."""
    return mjx.put_model(model, impl="jax")


def geom_ids(model: mujoco.MjModel, names: Sequence[str]) -> np.ndarray:
    """Geom ids for ``names`` in the given order; KeyError naming every missing geom."""
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in names]
    missing = [n for n, i in zip(names, ids) if i < 0]
    if missing:
        raise KeyError(f"geom(s) not found in the model: {missing}")
    return np.asarray(ids, dtype=np.int32)


def mj_geom_normal_forces(
    model: mujoco.MjModel, data: mujoco.MjData, geom_ids: np.ndarray | Sequence[int]
) -> np.ndarray:
    """Total contact normal force (N, >= 0) on each geom of ``geom_ids`` in MuJoCo C.

    Uses ``mj_contactForce`` (which sums the pyramid facets) for every contact in ``data.contact``
    that owns constraint rows; a contact between two listed geoms counts for both.
    Requires a ``data`` on which the constraint solver has run (``mj_step``/``mj_forward``).
    """
    ids = np.asarray(geom_ids, dtype=np.int64).reshape(-1)
    out = np.zeros(ids.shape[0], dtype=np.float64)
    f6 = np.zeros(6, dtype=np.float64)
    for i in range(data.ncon):
        con = data.contact[i]
        if con.efc_address < 0:  # excluded / beyond margin: no constraint rows, no force
            continue
        mujoco.mj_contactForce(model, data, i, f6)
        out += f6[0] * ((ids == con.geom[0]) | (ids == con.geom[1]))
    return out


def _contact_normal_forces(mjx_model: mjx.Model, mjx_data: mjx.Data) -> jax.Array:
    """Normal force of every (statically allocated) MJX contact, zero when inactive. Shape (ncon,)."""
    impl = mjx_data._impl
    con = impl.contact
    efc_address = np.asarray(con.efc_address)  # static metadata in MJX
    dim = np.asarray(con.dim)
    ncon = efc_address.shape[0]
    fn = jnp.zeros((ncon,), dtype=impl.efc_force.dtype)
    pyramidal = mjx_model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    # Group contacts by condim so that every gather has a static shape.
    for c in np.unique(dim):
        idx = np.nonzero((dim == c) & (efc_address >= 0))[0]
        if idx.size == 0:
            continue
        if pyramidal:
            nrow = 1 if c == 1 else 2 * (int(c) - 1)
        else:
            nrow = 1  # elliptic: row 0 of the contact is the normal force
        rows = efc_address[idx, None] + np.arange(nrow)[None, :]
        fn = fn.at[idx].set(impl.efc_force[rows].sum(axis=-1))
    # MJX keeps every candidate contact; only those closer than their margin are constraints.
    active = con.dist < con.includemargin
    return jnp.where(active, fn, 0.0)


def mjx_geom_normal_forces(
    mjx_model: mjx.Model, mjx_data: mjx.Data, geom_ids: np.ndarray | Sequence[int] | jax.Array
) -> jax.Array:
    """Total contact normal force (N, >= 0) on each geom of ``geom_ids`` in MJX. Shape (G,).

    Pure and jit/vmap-friendly (batch over ``mjx_data``). Raises ValueError if the model has no
    contacts at all (a foot force that could never be non-zero must not read as "no contact").
    """
    con = mjx_data._impl.contact
    if np.asarray(con.efc_address).shape[0] == 0:
        raise ValueError("the MJX model has no contacts: geom normal forces would always be zero")
    fn = _contact_normal_forces(mjx_model, mjx_data)  # (ncon,)
    ids = jnp.asarray(geom_ids, dtype=jnp.int32).reshape(-1)
    g = con.geom  # (ncon, 2)
    touches = (g[None, :, 0] == ids[:, None]) | (g[None, :, 1] == ids[:, None])  # (G, ncon)
    return jnp.sum(jnp.where(touches, fn[None, :], 0.0), axis=-1)
