// JSON shapes of the Subsonic API calls the web app makes (`/rest/...`). They are defined by
// the Subsonic / OpenSubsonic specification, not by the service's OpenAPI document (which
// describes only its own REST API), so they are written here, limited to the fields the app
// reads. See docs/service/subsonic.md.

/** One `entry` of a Subsonic `playQueue` (a "child"; only the fields the app reads). */
export interface SubsonicChild {
  id: string;
  title?: string;
}

/** The `playQueue` element: `position` in milliseconds, `changed` an ISO 8601 time. */
export interface SubsonicPlayQueue {
  entry?: SubsonicChild[];
  current?: string;
  position?: number;
  username?: string;
  changed?: string;
  changedBy?: string;
}
