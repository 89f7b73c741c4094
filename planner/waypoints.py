"""Waypoints: where the proprio cost aims while a wall stands between robot and goal.

The cost is greedy: the distance from the imagined end of one horizon to the goal.
In the two-room maze, when the middle wall separates the robot from its goal and
the door is off the straight line between them, that distance has a local minimum
on the wall, where plans press and stay (README, "Where it stands"). Until the
robot is through, the service aims the proprio term at a point just past the door
on the goal's side (the visual term keeps the goal image). The map is the one the
hard guardrails already use (``wall_x``, ``door_y``, see :mod:`planner.guardrails`),
so the waypoint needs nothing a request does not already say.
"""

from __future__ import annotations

#: How far past the wall's centre line the door waypoint sits (px): the wall's half
#: width (3) and one more success radius (4.5 px), so that a robot at the waypoint is
#: clear of the door's jambs and in the goal's room.
TWOROOM_WAYPOINT_PAST_WALL = 7.5


def tworoom_waypoint(
    position: tuple[float, float], goal: tuple[float, float], wall_x: float, door_y: float
) -> tuple[float, float] | None:
    """The point to aim at from ``position`` toward ``goal`` in a two-room maze.

    Args:
        position: The robot's (x, y), px.
        goal: The goal's (x, y), px.
        wall_x: The middle wall's centre line, px.
        door_y: The door's centre, px.

    Returns:
        Just past the door on the goal's side when the wall's centre line separates
        ``position`` from ``goal`` (a point on the line counts as the goal's side), else
        None: aim at the goal itself.
    """
    here, there = position[0] >= wall_x, goal[0] >= wall_x
    if here == there:
        return None
    side = 1.0 if there else -1.0
    return (wall_x + side * TWOROOM_WAYPOINT_PAST_WALL, door_y)
