"""Checks of the sending limits' shape, with errors that name the bad value."""


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def ratelimit_errors(default_limits, by_account):
    """Every problem in ratelimit_limits and ratelimit_limits_by_account; [] when all is well."""
    errors = []
    if not isinstance(default_limits, list) or not default_limits:
        errors.append(f"ratelimit_limits: {default_limits!r} must be a non-empty list of [recipients, seconds]")
        default_limits = []
    if not isinstance(by_account, dict):
        errors.append(f"ratelimit_limits_by_account: {by_account!r} must be a mapping of address to limits")
        by_account = {}
    for name, limits in [("ratelimit_limits", default_limits)] + [
            (f"sending_limits of '{account}'", limits) for account, limits in sorted(by_account.items())]:
        if not isinstance(limits, list):
            errors.append(f"{name}: {limits!r} is not a list of [recipients, seconds] ([] for no limit)")
            continue
        for pair in limits:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_count(v) for v in pair)):
                errors.append(f"{name}: {pair!r} is not [recipients, seconds] with two positive whole numbers")
    return errors


class FilterModule:  # pylint: disable=too-few-public-methods
    def filters(self):
        return {"ratelimit_errors": ratelimit_errors}
