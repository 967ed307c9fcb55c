"""scenarios.yaml's notification settings (the seed's Path B) and the provider faults a scenario can inject.

Times in a fault are seconds from the start of the scenario's load. The fake providers apply them; pointed at the
real Twilio and Google Calendar, faults do not apply.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    start_s: float = Field(ge=0, le=86_400)
    length_s: float = Field(gt=0, le=86_400)


class RateLimitBurst(Window):
    """The provider answers 429 with Retry-After during the window."""

    retry_after_s: float = Field(default=1.0, ge=0, le=600)


class Latency(_Strict):
    """Lognormal response time of the provider, given by its median and P95."""

    median_ms: float = Field(gt=0, le=60_000)
    p95_ms: float = Field(gt=0, le=60_000)

    @model_validator(mode="after")
    def _ordered(self) -> Latency:
        if self.p95_ms < self.median_ms:
            raise ValueError("p95_ms must be >= median_ms")
        return self


class ProviderFaults(_Strict):
    latency: Latency | None = None
    error_rate: float = Field(default=0.0, ge=0, le=1)  # answered 503
    outages: list[Window] = Field(default_factory=list)  # every request answered 503
    rate_limits: list[RateLimitBurst] = Field(default_factory=list)
    # calendar only: OAuth2 access tokens expire after this long (then 401 until refreshed)
    token_ttl_s: float | None = Field(default=None, gt=0, le=86_400)
    # calendar only: share of time slots where the calendar already holds someone else's event
    conflict_rate: float = Field(default=0.0, ge=0, le=1)


class Faults(_Strict):
    sms: ProviderFaults = ProviderFaults()
    calendar: ProviderFaults = ProviderFaults()

    def scaled(self, factor: float) -> Faults:
        def windows(p: ProviderFaults) -> ProviderFaults:
            if not p.outages and not p.rate_limits:
                return p  # untouched, so its set fields stay exactly what the file said
            return p.model_copy(update={
                "outages": [w.model_copy(update={"start_s": w.start_s * factor, "length_s": w.length_s * factor})
                            for w in p.outages],
                "rate_limits": [w.model_copy(update={"start_s": w.start_s * factor, "length_s": w.length_s * factor})
                                for w in p.rate_limits]})
        return Faults(sms=windows(self.sms), calendar=windows(self.calendar))


class NotificationSpec(_Strict):
    enabled: bool = True
    dispatchers: int = Field(default=2, ge=1, le=16)
    # after the load, how long undelivered notifications may take before they count as lost
    drain_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # how the fake providers behave in every scenario (a scenario's `faults` replace these per provider)
    providers: Faults = Faults(sms=ProviderFaults(latency=Latency(median_ms=60, p95_ms=200)),
                               calendar=ProviderFaults(latency=Latency(median_ms=90, p95_ms=300)))

    def faults_for(self, scenario_faults: Faults | None) -> Faults:
        """The providers' behaviour in a scenario: the fields its `faults` set replace the defaults' (an outage
        keeps the default latency)."""
        if scenario_faults is None:
            return self.providers

        def merged(base: ProviderFaults, mine: ProviderFaults) -> ProviderFaults:
            return base.model_copy(update={k: getattr(mine, k) for k in mine.model_fields_set})

        return Faults(sms=merged(self.providers.sms, scenario_faults.sms),
                      calendar=merged(self.providers.calendar, scenario_faults.calendar))
