# AnyCode sandbox shell
[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
PS1='\[\e[1;32m\]agent@${ANYCODE_TASK:-sandbox}\[\e[0m\]:\[\e[1;34m\]\w\[\e[0m\]\$ '
alias ls='ls --color=auto'
alias grep='grep --color=auto'
