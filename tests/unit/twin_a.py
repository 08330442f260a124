"""A module with functions named like twin_b's (see test_definitions)."""


async def same(x: int) -> int:
    return x


async def same_activity(x: int) -> int:
    return x
