// The heart of an album's or artist's page: named "Like" or "Unlike" by what a press does.
import { Icon } from "./Icon";

export function LikeButton({
  liked,
  what,
  onToggle,
}: {
  liked: boolean;
  /** What is liked, for the tooltip ("this album"). */
  what: string;
  onToggle: () => void;
}) {
  return (
    <button
      type="button"
      className={`icon-button like hero-like ${liked ? "on" : ""}`}
      aria-label={liked ? "Unlike" : "Like"}
      title={liked ? `Remove ${what} from your likes` : `Like ${what}`}
      onClick={onToggle}
    >
      <Icon name={liked ? "heart-filled" : "heart"} size={30} />
    </button>
  );
}
