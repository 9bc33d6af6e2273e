/** Text for a "#" comment line: control characters (a newline would end the comment) become spaces. */
export function commentText(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, ' ');
}
