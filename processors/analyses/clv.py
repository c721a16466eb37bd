"""Customer lifetime value: historical CLV, and BG/NBD + Gamma-Gamma predictions. Pure.

Input is the ``profiles`` table (docs/analysis-tables.md): one row per customer with
``user_id``, ``as_of``, ``orders_total``, ``avg_order_value``, ``monetary_total``,
``first_order_at`` and ``last_order_at``. No I/O, no clock: the observation end ``as_of`` is an
argument (default: the latest ``as_of`` of the table).

Units and time semantics
------------------------
* Money is CNY (float). Times are aware UTC timestamps; durations are real-valued (no
  rounding to whole days) and expressed in a **time unit** of ``unit_days`` days (1.0: days,
  7.0: weeks). Every model quantity -- ``recency``, ``T``, ``alpha`` (a rate parameter, per
  unit), a prediction ``horizon`` -- is in that one unit; mixing units is the caller's error.
* :func:`summary` builds the RFM summary of the BG/NBD model for the customers with at least
  one order: ``frequency`` = repeat purchases ``orders_total - 1``; ``recency`` = time from the
  first to the last order; ``T`` = time from the first order to ``as_of`` (the customer's age);
  ``monetary_value`` = ``avg_order_value``.
* ``monetary_value`` is the mean amount of **all** the customer's priced orders, the first one
  included, because that is what the workers keep (the profile has no per-order amounts).
  Fader and Hardie's Gamma-Gamma model is defined on the mean of the ``frequency`` repeat
  transactions only; using the all-orders mean with ``x = frequency`` is the usual practical
  approximation (it is also what ``lifetimes.utils.summary_data_from_transaction_data`` gives
  with ``include_first_transaction=True``). It is documented, not corrected.
* :func:`historical_clv` is the backward-looking business formula (CNY, years of 365.25 days).

Models
------
* **BG/NBD** (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): while
  alive a customer buys as a Poisson process of rate ``lambda ~ Gamma(r, rate alpha)`` (per
  time unit); after each repeat purchase they drop out with probability ``p ~ Beta(a, b)``.
  :func:`fit_bgnbd` maximises the likelihood of ``(frequency, recency, T)``.
* **Gamma-Gamma** (Fader and Hardie 2013, "The Gamma-Gamma model of monetary value"): each
  transaction value ``~ Gamma(p, rate nu)`` with ``nu ~ Gamma(q, rate gamma)``, independent of
  the purchase process; :func:`fit_gamma_gamma` fits it to the mean value of repeaters.
* Both fits are maximum likelihood with :func:`scipy.optimize.minimize` over the logarithms of
  the parameters (no analytic gradient): L-BFGS-B with central-difference gradients from a few
  starting points, polished by Nelder-Mead when L-BFGS-B does not report success; the best
  start wins. Log-likelihoods use ``gammaln``/``betaln`` and ``logaddexp`` (no overflowing
  gamma functions or powers). A reported ``log_likelihood`` is the **total** over the
  customers, in the data's own units (the BG/NBD likelihood is a density in the purchase
  times and the Gamma-Gamma one in money, so it depends on the time unit and on CNY).
* Predictions (:func:`predict`) are undiscounted: ``expected_value = expected_purchases x
  expected_avg_value`` (CNY) over the next ``horizon`` time units.

>>> import pandas as pd
>>> t0 = pd.Timestamp("2025-01-01", tz="UTC")
>>> profiles = pd.DataFrame({
...     "user_id": ["u1", "u2"], "as_of": [t0 + pd.Timedelta(days=10)] * 2,
...     "orders_total": [3, 1], "avg_order_value": [50.0, 20.0],
...     "monetary_total": [150.0, 20.0],
...     "first_order_at": [t0, t0 + pd.Timedelta(days=5)],
...     "last_order_at": [t0 + pd.Timedelta(days=4), t0 + pd.Timedelta(days=5)]})
>>> summary(profiles).to_dict("index")["u1"]
{'frequency': 2, 'recency': 4.0, 'T': 10.0, 'monetary_value': 50.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import OptimizeResult, minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

YEAR_DAYS = 365.25
"""Days in a year for :func:`historical_clv` (Julian year)."""

SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
PREDICT_COLUMNS = ("p_alive", "expected_purchases", "expected_avg_value", "expected_value")

_LOG_BOUND = 20.0
"""Log-parameters are searched in [-20, 20] (parameters in ~[2e-9, 5e8]); an optimum on
that box means the data do not identify the model (reported as not converged)."""
_ROUNDING_S = 1.0
"""Seconds by which ``last_order_at`` may precede ``first_order_at`` (timestamps rounded in
different places) and count as 0; more is inconsistent data (ValueError)."""

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------
# Summary and historical CLV
# --------------------------------------------------------------------------------------


def _observation_end(profiles: pd.DataFrame, as_of: datetime | pd.Timestamp | None) -> pd.Timestamp:
    """The observation end as an aware UTC Timestamp: ``as_of``, or the table's max ``as_of``."""
    if as_of is None:
        if "as_of" not in profiles.columns or profiles["as_of"].isna().all():
            raise ValueError("as_of is required: the profiles table has no as_of values")
        end = pd.Timestamp(profiles["as_of"].max())
    else:
        end = pd.Timestamp(as_of)
    if end.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    return end.tz_convert("UTC")


def _durations(later: pd.Series, earlier: pd.Series, unit_days: float) -> pd.Series:
    """``later - earlier`` in units of ``unit_days`` days (float; NaN where a time is NaT)."""
    return (later - earlier).dt.total_seconds() / (unit_days * 86400.0)


def _customers(profiles: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """The rows of customers at ``end``: ``orders_total >= 1``, a first order at or before it."""
    if profiles["user_id"].duplicated().any():
        raise ValueError("profiles has duplicate user_id values (one row per customer expected)")
    first = pd.to_datetime(profiles["first_order_at"], utc=True)
    orders = pd.to_numeric(profiles["orders_total"], errors="coerce").fillna(0)
    keep = (orders >= 1) & first.notna() & (first <= end)
    return profiles.loc[keep]


def _empty(columns: Sequence[str], dtypes: Sequence[str]) -> pd.DataFrame:
    """An empty frame indexed by ``user_id`` with the given columns and dtypes."""
    frame = pd.DataFrame({c: pd.Series(dtype=d) for c, d in zip(columns, dtypes, strict=True)})
    frame.index = pd.Index([], dtype=object, name="user_id")
    return frame


def summary(
    profiles: pd.DataFrame,
    as_of: datetime | pd.Timestamp | None = None,
    unit_days: float = 1.0,
) -> pd.DataFrame:
    """The BG/NBD / Gamma-Gamma summary of the ``profiles`` table at ``as_of``.

    Returns a DataFrame indexed by ``user_id`` (input order) with columns

    * ``frequency`` (int): repeat purchases, ``orders_total - 1``;
    * ``recency`` (float, time units): ``last_order_at - first_order_at``; 0 when
      ``frequency`` is 0 or ``last_order_at`` is unknown;
    * ``T`` (float, time units): ``as_of - first_order_at``, the customer's age;
    * ``monetary_value`` (float CNY or NaN): ``avg_order_value``, the mean of all priced
      orders including the first (what the workers keep; see the module notes).

    A time unit is ``unit_days`` days (1.0 days, 7.0 weeks). ``as_of`` (aware) defaults to the
    latest ``as_of`` in the table. Only customers with ``orders_total >= 1`` and a known
    ``first_order_at`` not after ``as_of`` are included (later ones are not customers yet).
    The summary does not re-cut history: the counts are the profiles' own, so ``as_of`` should
    be at or after every profile's ``as_of``. Durations are exact (nanosecond timestamps);
    a last order up to 1 s before the first (rounding) counts as recency 0, more is a
    ValueError; ``recency`` is capped at ``T`` (an order later than ``as_of`` counts as at
    ``as_of``).
    """
    if not unit_days > 0:
        raise ValueError(f"unit_days must be positive, got {unit_days!r}")
    if profiles.empty:
        return _empty(SUMMARY_COLUMNS, ("int64", "float64", "float64", "float64"))
    end = _observation_end(profiles, as_of)
    rows = _customers(profiles, end)
    first = pd.to_datetime(rows["first_order_at"], utc=True)
    last = pd.to_datetime(rows["last_order_at"], utc=True)
    frequency = pd.to_numeric(rows["orders_total"]).astype("int64") - 1
    age = _durations(pd.Series(end, index=rows.index), first, unit_days).clip(lower=0.0)
    recency = _durations(last, first, unit_days).fillna(0.0)
    if (recency < -_ROUNDING_S / (unit_days * 86400.0)).any():
        bad = rows.loc[recency < 0, "user_id"].tolist()[:5]
        raise ValueError(f"last_order_at before first_order_at for user_id {bad}")
    recency = recency.clip(lower=0.0)
    recency = recency.where(frequency > 0, 0.0).clip(upper=age)
    out = pd.DataFrame(
        {
            "frequency": frequency.to_numpy(),
            "recency": recency.to_numpy(dtype=float),
            "T": age.to_numpy(dtype=float),
            "monetary_value": pd.to_numeric(rows["avg_order_value"]).to_numpy(dtype=float),
        },
        index=pd.Index(rows["user_id"].to_numpy(), name="user_id"),
    )
    return out


@dataclass(frozen=True, eq=False)
class HistoricalCLV:
    """Historical CLV per customer and for the average customer.

    ``customers`` (index ``user_id``): ``orders`` (int), ``avg_order_value`` (CNY/order),
    ``observed_years`` (first order to ``as_of``), ``orders_per_year``, ``lifespan_years``,
    ``clv`` (CNY). The aggregate fields are over the customers with a priced order
    (``n`` of them): ``avg_order_value`` CNY/order, ``purchase_frequency`` orders per customer
    per year, ``lifespan_years`` years and ``clv`` CNY per customer.
    """

    customers: pd.DataFrame
    avg_order_value: float
    purchase_frequency: float
    lifespan_years: float
    clv: float
    n: int


def historical_clv(
    profiles: pd.DataFrame,
    lifespan_days: float | None = None,
    as_of: datetime | pd.Timestamp | None = None,
) -> HistoricalCLV:
    """Historical CLV = average order value x purchase frequency x lifespan (CNY).

    Per customer ``i`` (``orders_total >= 1``, first order known and not after ``as_of``;
    ``as_of`` defaults to the table's latest):

    * ``observed_years_i = (as_of - first_order_at_i) / 365.25 days``: the observed lifespan,
      from acquisition to the end of observation. (Not first-to-last order: that is 0 for
      every one-order customer and ignores the silence since the last order.)
    * ``orders_per_year_i = orders_total_i / observed_years_i`` (NaN when it is 0).
    * ``lifespan_years_i = lifespan_days / 365.25`` if given, else ``observed_years_i``.
    * ``clv_i = avg_order_value_i x orders_per_year_i x lifespan_years_i`` (CNY); without
      ``lifespan_days`` this is ``avg_order_value_i x orders_total_i``, the spend to date
      (unpriced orders valued at the customer's mean), also when ``observed_years_i`` is 0.

    Aggregate, over the ``n`` customers whose ``avg_order_value`` is known:

    * ``avg_order_value = sum(aov_i x orders_i) / sum(orders_i)`` (CNY per order);
    * ``purchase_frequency = sum(orders_i) / sum(observed_years_i)`` (orders per customer
      per year of observed lifespan);
    * ``lifespan_years = lifespan_days / 365.25`` if given, else ``mean(observed_years_i)``;
    * ``clv = avg_order_value x purchase_frequency x lifespan_years`` (CNY per customer);
      without ``lifespan_days`` it equals the mean of ``clv_i``.

    Undiscounted, revenue not margin. An empty table gives NaN aggregates and ``n = 0``.
    """
    if lifespan_days is not None and not lifespan_days > 0:
        raise ValueError(f"lifespan_days must be positive, got {lifespan_days!r}")
    columns = ("orders", "avg_order_value", "observed_years", "orders_per_year",
               "lifespan_years", "clv")
    if profiles.empty:
        table = _empty(columns, ("int64",) + ("float64",) * 5)
        return HistoricalCLV(table, np.nan, np.nan, np.nan, np.nan, 0)
    end = _observation_end(profiles, as_of)
    rows = _customers(profiles, end)
    orders = pd.to_numeric(rows["orders_total"]).astype("int64").to_numpy()
    aov = pd.to_numeric(rows["avg_order_value"]).to_numpy(dtype=float)
    first = pd.to_datetime(rows["first_order_at"], utc=True)
    years = _durations(pd.Series(end, index=rows.index), first, YEAR_DAYS).to_numpy(dtype=float)
    years = np.maximum(years, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(years > 0, orders / np.where(years > 0, years, 1.0), np.nan)
    if lifespan_days is None:
        life = years
        clv = aov * orders
    else:
        life = np.full(len(rows), lifespan_days / YEAR_DAYS)
        clv = aov * rate * life
    table = pd.DataFrame(
        {"orders": orders, "avg_order_value": aov, "observed_years": years,
         "orders_per_year": rate, "lifespan_years": life, "clv": clv},
        index=pd.Index(rows["user_id"].to_numpy(), name="user_id"),
    )
    return _aggregate_clv(table, orders, aov, years, lifespan_days)


def _aggregate_clv(table: pd.DataFrame, orders: NDArray[np.int64], aov: FloatArray,
                   years: FloatArray, lifespan_days: float | None) -> HistoricalCLV:
    """The aggregate of :func:`historical_clv` over the customers with a known order value."""
    priced = np.isfinite(aov)
    n = int(priced.sum())
    if n == 0:
        return HistoricalCLV(table, np.nan, np.nan, np.nan, np.nan, 0)
    total_orders = float(orders[priced].sum())
    mean_aov = float((aov[priced] * orders[priced]).sum() / total_orders)
    exposure = float(years[priced].sum())
    frequency = total_orders / exposure if exposure > 0 else np.nan
    if lifespan_days is None:
        lifespan = float(years[priced].mean())
        clv = mean_aov * total_orders / n  # = aov x frequency x lifespan, also if exposure is 0
    else:
        lifespan = lifespan_days / YEAR_DAYS
        clv = mean_aov * frequency * lifespan
    return HistoricalCLV(table, mean_aov, frequency, lifespan, float(clv), n)


# --------------------------------------------------------------------------------------
# Fit records and optimisation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BGNBDFit:
    """A BG/NBD maximum-likelihood fit.

    ``r``, ``alpha`` (per time unit of the data: ``lambda ~ Gamma(r, rate alpha)``), ``a``,
    ``b`` (dropout ``p ~ Beta(a, b)``); ``log_likelihood``: total over the ``n`` customers, in
    the data's time unit, without the penalty; ``converged``: the optimiser reported success
    and no parameter sits on the search box; ``iterations``: optimiser iterations of the
    winning start; ``message``: the optimiser's account.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    converged: bool
    iterations: int
    n: int
    message: str


@dataclass(frozen=True)
class GammaGammaFit:
    """A Gamma-Gamma maximum-likelihood fit (money in CNY).

    Transaction value ``~ Gamma(p, rate nu)``, ``nu ~ Gamma(q, rate gamma)`` (``gamma`` in
    CNY); population mean spend per transaction ``p * gamma / (q - 1)`` (finite for q > 1).
    ``log_likelihood``: total over the ``n`` customers used (frequency > 0, monetary > 0) of
    the density of their mean value, per CNY. ``converged``, ``iterations``, ``message`` as
    for :class:`BGNBDFit`.
    """

    p: float
    q: float
    gamma: float
    log_likelihood: float
    converged: bool
    n: int
    iterations: int = 0
    message: str = ""


@dataclass(frozen=True)
class _Optimum:
    """The best point of :func:`_maximise` and how it was reached."""

    log_params: FloatArray
    value: float
    success: bool
    iterations: int
    message: str


def _safe(objective: Callable[[FloatArray], float]) -> Callable[[FloatArray], float]:
    """``objective`` with non-finite values replaced by a large finite one (optimisers choke)."""

    def wrapped(x: FloatArray) -> float:
        with np.errstate(all="ignore"):
            value = float(objective(np.asarray(x, dtype=float)))
        return value if np.isfinite(value) else 1e100

    return wrapped


def _run_start(objective: Callable[[FloatArray], float], x0: FloatArray) -> _Optimum:
    """L-BFGS-B (central differences) from ``x0``, then Nelder-Mead if that did not succeed."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(x0)
    first: OptimizeResult = minimize(
        objective, x0, method="L-BFGS-B", jac="3-point", bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-9},
    )
    if first.success and np.isfinite(first.fun):
        return _Optimum(first.x, float(first.fun), True, int(first.nit),
                        f"L-BFGS-B: {first.message}")
    start = first.x if np.all(np.isfinite(first.x)) else x0
    second: OptimizeResult = minimize(
        objective, start, method="Nelder-Mead", bounds=bounds,
        options={"maxiter": 20000, "maxfev": 40000, "xatol": 1e-9, "fatol": 1e-13,
                 "adaptive": True},
    )
    best = second if second.fun <= first.fun else first
    message = f"L-BFGS-B: {first.message}; Nelder-Mead: {second.message}"
    return _Optimum(best.x, float(best.fun), bool(second.success), int(first.nit + second.nit),
                    message)


def _maximise(objective: Callable[[FloatArray], float], starts: Sequence[FloatArray],
              names: Sequence[str]) -> _Optimum:
    """Minimise ``objective`` (a negative mean log-likelihood) over log-parameters.

    Each start runs :func:`_run_start`; the lowest value wins. ``success`` also requires the
    optimum to lie inside the search box (a parameter on the box is not identified).
    """
    safe = _safe(objective)
    runs = [_run_start(safe, np.asarray(x0, dtype=float)) for x0 in starts]
    best = min(runs, key=lambda run: run.value)
    if best.value >= 1e100:
        return _Optimum(best.log_params, np.inf, False, best.iterations,
                        "the log-likelihood is not finite anywhere the optimiser went")
    edge = [n for n, v in zip(names, best.log_params, strict=True)
            if abs(v) >= _LOG_BOUND - 1e-6]
    if edge:
        return _Optimum(best.log_params, best.value, False, best.iterations,
                        f"{best.message}; parameter(s) {', '.join(edge)} at the search bound "
                        f"exp(+-{_LOG_BOUND:g}): the data do not identify the model")
    return best


def _array(name: str, values: ArrayLike) -> FloatArray:
    """``values`` as a finite 1-D float array."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values (NaN or inf)")
    return arr


# --------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------


def _bgnbd_terms(r: float, alpha: float, a: float, b: float, x: FloatArray,
                 tx: FloatArray, T: FloatArray) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie and Lee 2005, eq. 6; note 004).

    ``L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
    + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))``, summed in
    log space with ``logaddexp``; the second term is ``-inf`` (absent) when ``x == 0``.
    """
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - (r + x) * np.log(alpha + tx)
    a4 = np.where(x > 0, a4, -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def _bgnbd_inputs(frequency: ArrayLike, recency: ArrayLike,
                  T: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validated ``(x, t_x, T)`` float arrays; a ValueError says what is wrong."""
    x, tx, age = _array("frequency", frequency), _array("recency", recency), _array("T", T)
    if not len(x) == len(tx) == len(age):
        raise ValueError(f"frequency, recency and T differ in length: "
                         f"{len(x)}, {len(tx)}, {len(age)}")
    if len(x) == 0:
        raise ValueError("BG/NBD: no customers (empty input)")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be non-negative integers (repeat purchases)")
    if np.any(tx < 0) or np.any(age < 0):
        raise ValueError("recency and T must be non-negative")
    if np.any(tx > age):
        raise ValueError("recency exceeds T for some customers (last order after as_of?)")
    if np.any(tx[x == 0] != 0):
        raise ValueError("recency must be 0 where frequency is 0")
    return x, tx, age


def bgnbd_log_likelihood(r: float, alpha: float, a: float, b: float, frequency: ArrayLike,
                         recency: ArrayLike, T: ArrayLike) -> float:
    """Total BG/NBD log-likelihood of ``(frequency, recency, T)`` at the given parameters.

    Times in one unit (``alpha`` per that unit). A density in the purchase times: changing the
    time unit by a factor ``s`` adds ``sum(frequency) * log(s)``.
    """
    x, tx, age = _bgnbd_inputs(frequency, recency, T)
    return float(np.sum(_bgnbd_terms(r, alpha, a, b, x, tx, age)))


def _bgnbd_starts(x: FloatArray, age: FloatArray) -> list[FloatArray]:
    """Starting log-parameters for time scaled to ``max(T) = 1``."""
    rate = max(float(x.sum() / max(age.sum(), 1e-12)), 1e-6)
    return [
        np.zeros(4),
        np.full(4, 0.1),  # lifetimes' default start
        np.log([1.0, 1.0 / rate, 1.0, 3.0]),
    ]


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
              penalizer: float = 0.0) -> BGNBDFit:
    """Fit the BG/NBD model by maximum likelihood.

    ``frequency``: repeat purchases (integers); ``recency``: time of the last purchase since
    the first; ``T``: age (time since the first purchase to the end of observation); all in one
    time unit, which ``alpha`` is then per. As in lifetimes, time is scaled internally so that
    ``max(T) == 1`` (conditioning) and ``penalizer * (r^2 + alpha_s^2 + a^2 + b^2)`` (``alpha_s``
    the scaled alpha) is added to the negative *mean* log-likelihood, so a penalised fit equals
    lifetimes' ``BetaGeoFitter(penalizer_coef=penalizer)``. The reported log-likelihood is the
    unpenalised total in the input's time unit.

    Raises ValueError for empty or invalid input, ``T`` all 0, or no repeat purchase at all
    (then the dropout process is not identified).
    """
    x, tx, age = _bgnbd_inputs(frequency, recency, T)
    if not penalizer >= 0:
        raise ValueError(f"penalizer must be >= 0, got {penalizer!r}")
    if float(age.max()) <= 0:
        raise ValueError("BG/NBD: every customer has T == 0 (no observation time)")
    if float(x.sum()) == 0:
        raise ValueError(f"BG/NBD: none of the {len(x)} customers has a repeat purchase "
                         "(frequency is 0 for all): the model is not identified")
    scale = 1.0 / float(age.max())
    txs, ages = tx * scale, age * scale

    def objective(log_params: FloatArray) -> float:
        r, alpha, a, b = np.exp(log_params)
        mean = np.mean(_bgnbd_terms(r, alpha, a, b, x, txs, ages))
        return float(-mean + penalizer * np.sum(np.exp(2.0 * log_params)))

    best = _maximise(objective, _bgnbd_starts(x, ages), ("r", "alpha", "a", "b"))
    r, alpha_s, a, b = (float(v) for v in np.exp(best.log_params))
    alpha = alpha_s / scale
    ll = float(np.sum(_bgnbd_terms(r, alpha, a, b, x, tx, age)))
    return BGNBDFit(r, alpha, a, b, ll, bool(best.success and np.isfinite(ll)), best.iterations,
                    len(x), best.message)


def p_alive(fit: BGNBDFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(alive at T | x, t_x, T) under BG/NBD (Fader, Hardie and Lee, note 021).

    ``1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))``, computed
    as a logistic of the log-odds; exactly 1 for ``frequency == 0`` (no repeat purchase, no
    chance to drop out yet). Times in the fit's unit. Returns an array of the broadcast shape.
    """
    x = np.asarray(frequency, dtype=float)
    tx = np.asarray(recency, dtype=float)
    age = np.asarray(T, dtype=float)
    log_odds = ((fit.r + x) * (np.log(fit.alpha + age) - np.log(fit.alpha + tx))
                + np.log(fit.a) - np.log(fit.b + np.maximum(x, 1.0) - 1.0))
    return np.asarray(np.where(x > 0, expit(-log_odds), 1.0), dtype=float)


def _log_hyp2f1(a: FloatArray, b: FloatArray, c: FloatArray, z: FloatArray) -> FloatArray:
    """``log 2F1(a, b; c; z)`` for ``0 <= z < 1``, via Euler's transformation where the direct
    value overflows: ``2F1(a, b; c; z) = (1 - z)^(c-a-b) 2F1(c-a, c-b; c; z)`` (as lifetimes)."""
    with np.errstate(all="ignore"):
        direct = hyp2f1(a, b, c, z)
        log_direct = np.log(np.where(direct > 0, direct, np.nan))
        euler = np.log(hyp2f1(c - a, c - b, c, z)) + (c - a - b) * np.log1p(-z)
    return np.where(np.isfinite(log_direct), log_direct, euler)


def _alive_purchases_integral(fit: BGNBDFit, t: float, x: float, age: float) -> float:
    """E[purchases in (T, T + t] | alive at T, x, T] by quadrature over the dropout p.

    Given alive, lambda and p, purchases come at rate lambda until death at rate lambda p:
    ``E = (1 - exp(-lambda p t)) / p`` (Fader, Hardie and Lee 2005, eq. 7). The posterior of
    an alive customer is lambda ~ Gamma(r+x, rate alpha+T), p ~ Beta(a, b+x); integrating
    lambda out gives ``E = int_0^1 (1 - (1 + p t/(alpha+T))^-(r+x)) / p  Beta(p; a, b+x) dp``,
    smooth in p (the Beta kernel is quad's algebraic weight). Valid for every a, b > 0,
    including where eq. 10 has removable singularities (a = 1, or a+b+x-1 = 0).
    """
    from scipy.integrate import quad  # only for the rare points eq. 10 cannot evaluate

    rate = t / (fit.alpha + age)
    power = fit.r + x

    def spend(p: float) -> float:
        if p <= 0.0:
            return power * rate
        return float(-np.expm1(-power * np.log1p(p * rate)) / p)

    value, _ = quad(spend, 0.0, 1.0, weight="alg", wvar=(fit.a - 1.0, fit.b + x - 1.0),
                    limit=200, epsabs=0.0, epsrel=1e-10)
    return float(value * np.exp(-betaln(fit.a, fit.b + x)))


def expected_purchases(fit: BGNBDFit, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike,
                       T: ArrayLike) -> FloatArray:
    """E[purchases in (T, T + t] | x, t_x, T] under BG/NBD (Fader, Hardie and Lee, eq. 10).

    ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
    * P(alive)`` with ``z = t / (alpha+T+t)`` (the denominator of eq. 10 is ``1 / P(alive)``);
    the bracket is ``-expm1`` of its log so small ``t`` keeps precision. Where eq. 10 is not
    finite or sits at a removable singularity (``a`` within 1e-6 of 1, ``a+b+x-1`` within
    1e-6 of 0) the value is the equivalent one-dimensional integral
    (:func:`_alive_purchases_integral`) times P(alive). ``t`` and the times in the fit's unit;
    0 for ``t == 0``; increasing in ``t``. Returns an array of the broadcast shape.
    """
    x, tx, age, horizon = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (frequency, recency, T, t)))
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    c = a + b + x - 1.0
    z = horizon / (alpha + age + horizon)
    with np.errstate(all="ignore"):
        log_term = (_log_hyp2f1(r + x, b + x, c, z)
                    + (r + x) * (np.log(alpha + age) - np.log(alpha + age + horizon)))
        conditional = c / (a - 1.0) * -np.expm1(log_term)
    bad = ~np.isfinite(conditional) | (abs(a - 1.0) < 1e-6) | (np.abs(c) < 1e-6)
    bad &= horizon > 0
    if bad.any():
        conditional = np.array(conditional, dtype=float)  # a contiguous copy: flat is a view
        flat, xs, ages, ts = (v.reshape(-1) for v in (conditional, x, age, horizon))
        for i in np.flatnonzero(bad):
            flat[i] = _alive_purchases_integral(fit, float(ts[i]), float(xs[i]), float(ages[i]))
    value = conditional * p_alive(fit, x, tx, age)
    return np.asarray(np.where(horizon == 0, 0.0, value), dtype=float)


# --------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------


def _gamma_gamma_terms(p: float, q: float, gamma: float, x: FloatArray,
                       m: FloatArray) -> FloatArray:
    """Per-customer log density of the mean value ``m`` of ``x`` transactions (note 025, 1a).

    ``f(m) = G(px+q) / (G(px) G(q)) * gamma^q * m^(px-1) * x^(px) / (gamma + m x)^(px+q)``,
    as ``-betaln(px, q) + px log(mx/(mx+gamma)) + q log(gamma/(mx+gamma)) - log m``.
    """
    px = p * x
    mx = m * x
    log_total = np.log(mx + gamma)
    return (-betaln(px, q) + px * (np.log(mx) - log_total)
            + q * (np.log(gamma) - log_total) - np.log(m))


def _gamma_gamma_inputs(frequency: ArrayLike,
                        monetary_value: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The ``(x, m)`` of the customers with ``x > 0`` and a finite ``m > 0``."""
    x = np.asarray(frequency, dtype=float).reshape(-1)
    m = np.asarray(monetary_value, dtype=float).reshape(-1)
    if len(x) != len(m):
        raise ValueError(f"frequency and monetary_value differ in length: {len(x)}, {len(m)}")
    if np.any(~np.isfinite(x)) or np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be non-negative integers (repeat purchases)")
    keep = (x > 0) & np.isfinite(m) & (m > 0)
    return x[keep], m[keep]


def gamma_gamma_log_likelihood(p: float, q: float, gamma: float, frequency: ArrayLike,
                               monetary_value: ArrayLike) -> float:
    """Total Gamma-Gamma log-likelihood (per CNY) over customers with frequency > 0 and
    monetary_value > 0 (the others are left out, as in the fit)."""
    x, m = _gamma_gamma_inputs(frequency, monetary_value)
    return float(np.sum(_gamma_gamma_terms(p, q, gamma, x, m)))


def fit_gamma_gamma(frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGammaFit:
    """Fit the Gamma-Gamma spend model by maximum likelihood (Fader and Hardie 2013).

    Uses the customers with ``frequency > 0`` and a finite ``monetary_value > 0`` (CNY, the
    mean value per order; see the module notes on the first order). Money is scaled
    internally by its median (conditioning); ``gamma`` is reported in CNY and the
    log-likelihood is the total per CNY. No penalty (``q_constraint`` is not applied either:
    ``q <= 1`` is reported as found, and then the population mean spend is infinite).

    Raises ValueError when no customer qualifies.
    """
    x, m = _gamma_gamma_inputs(frequency, monetary_value)
    if len(x) == 0:
        raise ValueError("Gamma-Gamma: no customer with a repeat purchase (frequency > 0) "
                         "and a positive monetary_value")
    scale = 1.0 / float(np.median(m))
    ms = m * scale

    def objective(log_params: FloatArray) -> float:
        p, q, gamma = np.exp(log_params)
        return float(-np.mean(_gamma_gamma_terms(p, q, gamma, x, ms)))

    starts = [np.zeros(3), np.full(3, 0.1), np.log([2.0, 3.0, float(np.mean(ms))])]
    best = _maximise(objective, starts, ("p", "q", "gamma"))
    p, q, gamma_s = (float(v) for v in np.exp(best.log_params))
    gamma = gamma_s / scale
    ll = float(np.sum(_gamma_gamma_terms(p, q, gamma, x, m)))
    return GammaGammaFit(p, q, gamma, ll, bool(best.success and np.isfinite(ll)), len(x),
                         best.iterations, best.message)


def population_mean_value(gg: GammaGammaFit) -> float:
    """Mean spend per transaction of the population, ``p * gamma / (q - 1)`` CNY (NaN if
    ``q <= 1``: the mean is infinite)."""
    return gg.p * gg.gamma / (gg.q - 1.0) if gg.q > 1.0 else float("nan")


def expected_average_value(gg: GammaGammaFit, frequency: ArrayLike,
                           monetary_value: ArrayLike) -> FloatArray:
    """E[mean transaction value | x, m] under Gamma-Gamma (note 025, eq. 5), CNY.

    ``p (gamma + x m) / (p x + q - 1)``, i.e. the weight ``p x / (p x + q - 1)`` on the
    customer's own mean ``m`` and the rest on the population mean ``p gamma / (q - 1)``.
    Customers without repeat purchases, or without a positive ``m``, get the population mean
    (NaN when ``q <= 1``); NaN also where ``p x + q <= 1`` (infinite posterior mean).
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    usable = (x > 0) & np.isfinite(m) & (m > 0)
    x_eff = np.where(usable, x, 0.0)
    m_eff = np.where(usable, m, 0.0)
    denominator = gg.p * x_eff + gg.q - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        value = gg.p * (gg.gamma + x_eff * m_eff) / denominator
    return np.asarray(np.where(denominator > 0, value, np.nan), dtype=float)


# --------------------------------------------------------------------------------------
# Predictions and report
# --------------------------------------------------------------------------------------


def predict(summary_df: pd.DataFrame, bg: BGNBDFit, gg: GammaGammaFit,
            horizon: float) -> pd.DataFrame:
    """Per-customer predictions over the next ``horizon`` time units (the summary's unit).

    ``summary_df`` is a :func:`summary` frame. Returns a DataFrame on its index (``user_id``)
    with float columns ``p_alive`` (probability alive at ``T``), ``expected_purchases`` (in
    ``(T, T + horizon]``), ``expected_avg_value`` (CNY per purchase, :func:
    `expected_average_value`; the population mean ``p*gamma/(q-1)`` for customers without
    repeat purchases) and ``expected_value = expected_purchases x expected_avg_value`` (CNY,
    undiscounted).
    """
    if not horizon >= 0:
        raise ValueError(f"horizon must be >= 0 time units, got {horizon!r}")
    missing = [c for c in SUMMARY_COLUMNS if c not in summary_df.columns]
    if missing:
        raise ValueError(f"summary_df lacks column(s) {missing}; build it with summary()")
    x = summary_df["frequency"].to_numpy(dtype=float)
    tx = summary_df["recency"].to_numpy(dtype=float)
    age = summary_df["T"].to_numpy(dtype=float)
    m = summary_df["monetary_value"].to_numpy(dtype=float)
    alive = p_alive(bg, x, tx, age)
    purchases = expected_purchases(bg, horizon, x, tx, age)
    value = expected_average_value(gg, x, m)
    return pd.DataFrame(
        {"p_alive": alive, "expected_purchases": purchases, "expected_avg_value": value,
         "expected_value": purchases * value},
        index=summary_df.index, dtype=float,
    )


def fit_report(bg: BGNBDFit, gg: GammaGammaFit, unit: str = "day") -> dict[str, object]:
    """The fitted parameters and diagnostics as a JSON-ready dict (plain float/int/bool/str).

    ``unit`` names the time unit the BG/NBD was fitted in (``alpha`` is per that unit).
    """
    return {
        "r": float(bg.r), "alpha": float(bg.alpha), "a": float(bg.a), "b": float(bg.b),
        "p": float(gg.p), "q": float(gg.q), "gamma": float(gg.gamma),
        "log_likelihood_bgnbd": float(bg.log_likelihood),
        "log_likelihood_gamma_gamma": float(gg.log_likelihood),
        "converged_bgnbd": bool(bg.converged),
        "converged_gamma_gamma": bool(gg.converged),
        "customers": int(bg.n),
        "customers_gamma_gamma": int(gg.n),
        "time_unit": str(unit),
    }
