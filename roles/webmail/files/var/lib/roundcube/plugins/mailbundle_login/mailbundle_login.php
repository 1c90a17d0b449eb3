<?php
// Managed by Ansible (role webmail of the mail server bundle).
//
// Roundcube writes the user name of a failed login into its log line as it was typed,
// and fail2ban's webmail jail takes the address to ban from that line. A name with a
// line break in it ends the line early (PHP logs each line apart), so the first line
// can name any address: "x from 192.0.2.7 in session a (error: 0)<line break>x".
// No login name of ours has a space, a line break or any other control or separator
// character: a name with one is refused here without asking Dovecot, and Roundcube's
// log line shows it with each such character replaced by "?", so the line keeps its
// one shape and names only the browser's own address.
class mailbundle_login extends rcube_plugin
{
    public $task = 'login';

    public function init()
    {
        $this->add_hook('authenticate', [$this, 'authenticate']);
    }

    public function authenticate($args)
    {
        $user = (string) $args['user'];
        $clean = preg_replace('/[\s\p{C}\p{Z}]/u', '?', $user);
        if ($clean === null) {
            // Not valid UTF-8: keep printable ASCII only.
            $clean = preg_replace('/[^\x21-\x7e]/', '?', $user);
        }
        if ($clean !== $user) {
            $args['user'] = $clean;
            $args['abort'] = true;
        }
        return $args;
    }
}
